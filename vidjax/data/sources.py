"""Annotation parsers and random-access record sources.

Annotation formats (each parser returns `Annotations(records, classes, problems)`; problems name
`file:line` and are raised together with `strict=True`, else logged and the line skipped):
  * Kinetics CSV: header `label,youtube_id,time_start,time_end[,split|is_cc]` + a video folder whose
    files are named `{youtube_id}_{start:06d}_{end:06d}.ext` or `{youtube_id}.ext` (any subfolder).
  * Something-Something V2: a JSON list of `{"id", "template", ...}` + labels JSON
    `{"Template text": "idx"}`; videos `{id}.webm` (problems name `file:entry N`).
  * MMAction list files: `path label` or `path num_frames label` per line, paths relative to a root;
    a path with spaces is quoted (`"my clip.mp4" 3`) or the fields are separated by tabs. The
    record id is the path as written (normalised), so `a.mp4` and `a.webm` stay distinct.
  * One folder per class: `root/<class>/<video>`; classes sorted by name; ids `<class>/<video>`.
Class files: one name per line (`.txt`), a JSON list, or a JSON `{name: id}` whose ids are exactly
0..N-1 (gaps or repeats are refused, never renumbered). A missing annotation, labels file or
video folder is one `FileNotFoundError` line naming the path; `check_usable` refuses annotations
of which too few videos were found (a wrong `video_dir`).

Prepared datasets (written by `experiments/prepare_data.py`) are TFDS folder datasets of
ArrayRecord shards `{name}-{split}.array_record-XXXXX-of-YYYYY` (`group_size:1`) plus
`dataset_info.json`/`features.json`, readable with `tfds.builder_from_directory(dir)` (no TF).
Features (`prepared_features`): `id: Text`, `label: ClassLabel`, `fps: float32`,
`num_frames: int32`, and either `frames: Sequence(Tensor((), object))` (one JPEG per frame, fixed
fps, short side resized; mode 'frames') or `video: Tensor((), object)` (original container bytes;
mode 'video').
"""

from __future__ import annotations

import csv
import ctypes
import dataclasses
import json
import logging
import os
import shlex
from collections.abc import Sequence
from typing import Any

import numpy as np

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v")


@dataclasses.dataclass(frozen=True)
class VideoRecord:
  """One annotated video: `path` (file, or frame folder for MMAction rawframes), `label` id."""
  path: str
  label: int
  id: str = ""
  num_frames: int | None = None


@dataclasses.dataclass(frozen=True)
class Problem:
  """An annotation problem at `file:line` (or `file:entry N` for JSON)."""
  file: str
  line: int
  message: str
  unit: str = "line"

  def __str__(self) -> str:
    sep = ":" if self.unit == "line" else f":{self.unit} "
    return f"{self.file}{sep}{self.line}: {self.message}"


class AnnotationError(ValueError):
  """Raised with all problems of an annotation file when parsing strictly."""

  def __init__(self, problems: Sequence[Problem]):
    self.problems = list(problems)
    super().__init__("\n".join(str(p) for p in self.problems))


class ClassIndex:
  """Bidirectional class name ↔ id map, in the given order."""

  def __init__(self, names: Sequence[str]):
    self.names = list(names)
    self._ids = {n: i for i, n in enumerate(self.names)}
    if len(self._ids) != len(self.names):
      dup = sorted({n for n in self.names if self.names.count(n) > 1})
      raise ValueError(f"duplicate class names: {dup}")

  @classmethod
  def from_file(cls, path: str) -> "ClassIndex":
    """One name per line (`.txt`) or a JSON list / `{name: id}` dict with ids exactly 0..N-1."""
    _require_file(path, "labels")
    with open(path) as f:
      if not path.endswith(".json"):
        return cls([ln.strip() for ln in f if ln.strip()])
      try:
        d = json.load(f)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if isinstance(d, list):
      return cls([str(n) for n in d])
    if not isinstance(d, dict):
      raise ValueError(f"{path}: expected a JSON list of names or a {{name: id}} object")
    try:
      ids = {n: int(i) for n, i in d.items()}
    except (TypeError, ValueError):
      raise ValueError(f"{path}: class ids must be integers, got {sorted(d.values(), key=str)[:5]}") from None
    if sorted(ids.values()) != list(range(len(ids))):
      missing = sorted(set(range(len(ids))) - set(ids.values()))
      raise ValueError(f"{path}: class ids must be 0..{len(ids) - 1} without gaps or repeats; "
                       f"got {sorted(ids.values())[:10]} (missing {missing[:10]})")
    return cls(sorted(ids, key=ids.get))

  def __len__(self) -> int:
    return len(self.names)

  def __contains__(self, name: str) -> bool:
    return name in self._ids

  def id(self, name: str) -> int:
    return self._ids[name]


@dataclasses.dataclass
class Annotations:
  records: list[VideoRecord]
  classes: ClassIndex
  problems: list[Problem]


def _require_file(path: str, what: str) -> None:
  if not path:
    raise ValueError(f"no {what} file given")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{what} file not found: {path}")


def _require_dir(path: str, what: str = "video_dir") -> None:
  if path and not os.path.isdir(path):
    raise FileNotFoundError(f"{what} not found: {path}")


def check_usable(ann: Annotations, min_fraction: float, annotations: str, video_dir: str) -> None:
  """Raises ValueError when fewer than `min_fraction` of the annotated videos (records plus
  problems) are usable, or none is: the usual sign of a wrong `video_dir`."""
  total = len(ann.records) + len(ann.problems)
  if ann.records and len(ann.records) >= min_fraction * total:
    return
  first = f"; first problem: {ann.problems[0]}" if ann.problems else ""
  raise ValueError(f"{len(ann.records)} of {total} annotated videos usable under "
                   f"{video_dir or '.'} ({annotations or 'folders'}){first} "
                   f"(minimum fraction {min_fraction})")


_MAX_LOGGED_PROBLEMS = 10  # the full list stays in `Annotations.problems`


def _finish(records, classes, problems, strict: bool) -> Annotations:
  if problems:
    if strict:
      raise AnnotationError(problems)
    for p in problems[:_MAX_LOGGED_PROBLEMS]:
      logging.warning("annotation problem (skipped): %s", p)
    if len(problems) > _MAX_LOGGED_PROBLEMS:
      logging.warning("... and %d more annotation problems (skipped)",
                      len(problems) - _MAX_LOGGED_PROBLEMS)
  return Annotations(records, classes, problems)


def _index_videos(video_dir: str) -> dict[str, str]:
  """Maps file stem → path for every video below `video_dir`."""
  out = {}
  for root, _, files in os.walk(video_dir):
    for f in files:
      stem, ext = os.path.splitext(f)
      if ext.lower() in VIDEO_EXTENSIONS:
        out.setdefault(stem, os.path.join(root, f))
  return out


def parse_kinetics_csv(csv_path: str, video_dir: str, classes: ClassIndex | None = None,
                       strict: bool = False) -> Annotations:
  """Kinetics `label,youtube_id,time_start,time_end,split` CSV; classes default to sorted labels."""
  problems, rows = [], []
  _require_file(csv_path, "annotations")
  _require_dir(video_dir)
  index = _index_videos(video_dir)
  with open(csv_path, newline="") as f:
    reader = csv.reader(f)
    header = [h.strip() for h in next(reader, [])]
    need = ["label", "youtube_id", "time_start", "time_end"]
    if any(h not in header for h in need):
      raise AnnotationError([Problem(csv_path, 1, f"header {header} lacks one of {need}")])
    col = {h: header.index(h) for h in need}
    for lineno, row in enumerate(reader, start=2):
      if not row or all(not c.strip() for c in row):
        continue
      if len(row) < len(header):
        problems.append(Problem(csv_path, lineno, f"expected {len(header)} fields, got {row}"))
        continue
      label, yid = row[col["label"]].strip(), row[col["youtube_id"]].strip()
      try:
        ts, te = int(float(row[col["time_start"]])), int(float(row[col["time_end"]]))
      except ValueError:
        problems.append(Problem(csv_path, lineno, f"bad time_start/time_end in {row}"))
        continue
      if not label:
        problems.append(Problem(csv_path, lineno, "empty label"))
        continue
      rows.append((lineno, label, yid, ts, te))
  if classes is None:
    classes = ClassIndex(sorted({r[1] for r in rows}))
  records = []
  for lineno, label, yid, ts, te in rows:
    if label not in classes:
      problems.append(Problem(csv_path, lineno, f"unknown label {label!r}"))
      continue
    vid = f"{yid}_{ts:06d}_{te:06d}"
    path = index.get(vid) or index.get(yid)
    if path is None:
      problems.append(Problem(csv_path, lineno, f"missing video {vid} (or {yid}) under {video_dir}"))
      continue
    records.append(VideoRecord(path, classes.id(label), vid))
  return _finish(records, classes, problems, strict)


def parse_ssv2_json(json_path: str, labels_path: str, video_dir: str, ext: str = ".webm",
                    strict: bool = False) -> Annotations:
  """Something-Something V2 `[{id, template}]` JSON + `{template: idx}` labels JSON."""
  _require_file(json_path, "annotations")
  _require_dir(video_dir)
  classes = ClassIndex.from_file(labels_path)
  with open(json_path) as f:
    try:
      entries = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{json_path}: not valid JSON ({e})") from None
  if not isinstance(entries, list):
    raise ValueError(f"{json_path}: expected a JSON list of {{id, template}} entries")
  problems, records = [], []
  for n, e in enumerate(entries):
    if not isinstance(e, dict) or "id" not in e or "template" not in e:
      problems.append(Problem(json_path, n, f"expected an object with id/template, got {e!r}", "entry"))
      continue
    if not isinstance(e["template"], str):
      problems.append(Problem(json_path, n, f"template must be a string, got {e['template']!r}", "entry"))
      continue
    if not isinstance(e["id"], (str, int)) or isinstance(e["id"], bool):
      problems.append(Problem(json_path, n, f"id must be a string or integer, got {e['id']!r}", "entry"))
      continue
    label = e["template"].replace("[", "").replace("]", "")
    if label not in classes:
      problems.append(Problem(json_path, n, f"unknown label {label!r}", "entry"))
      continue
    path = os.path.join(video_dir, f"{e['id']}{ext}")
    if not os.path.exists(path):
      problems.append(Problem(json_path, n, f"missing video {path}", "entry"))
      continue
    records.append(VideoRecord(path, classes.id(label), str(e["id"])))
  return _finish(records, classes, problems, strict)


def parse_list_file(list_path: str, root: str = "", num_classes: int | None = None,
                    classes: ClassIndex | None = None, strict: bool = False) -> Annotations:
  """MMAction list file: `path label` or `path num_frames label` (integer labels); quote a path
  with spaces or separate the fields by tabs. Record ids are the normalised relative paths."""
  problems, records = [], []
  _require_file(list_path, "annotations")
  _require_dir(root)
  with open(list_path) as f:
    lines = f.read().splitlines()
  for lineno, line in enumerate(lines, start=1):
    try:
      parts = _list_fields(line)
    except ValueError as e:
      problems.append(Problem(list_path, lineno, f"{e} in {line!r}"))
      continue
    if not parts:
      continue
    if len(parts) not in (2, 3):
      problems.append(Problem(list_path, lineno, (
          f"expected 'path label' or 'path num_frames label' (quote a path with spaces or "
          f"separate the fields by tabs), got {len(parts)} fields in {line!r}")))
      continue
    try:
      label = int(parts[-1])
      nf = int(parts[1]) if len(parts) == 3 else None
    except ValueError:
      problems.append(Problem(list_path, lineno, (
          f"non-integer label/num_frames in {line!r} (quote a path with spaces or separate the "
          "fields by tabs)")))
      continue
    limit = len(classes) if classes is not None else num_classes
    if label < 0 or (limit is not None and label >= limit):
      problems.append(Problem(list_path, lineno, f"unknown label {label} (num_classes={limit})"))
      continue
    path = os.path.join(root, parts[0])
    if not os.path.exists(path):
      problems.append(Problem(list_path, lineno, f"missing video {path}"))
      continue
    records.append(VideoRecord(path, label, os.path.normpath(parts[0]), nf))
  if classes is None:
    n = num_classes or (max((r.label for r in records), default=-1) + 1)
    classes = ClassIndex([str(i) for i in range(n)])
  return _finish(records, classes, problems, strict)


def _list_fields(line: str) -> list[str]:
  """Tab-separated fields if the line has a tab, else shell-like words (quotes group; no escapes
  or comments, so backslashes and '#' stay part of a path)."""
  if "\t" in line:
    return [p.strip() for p in line.split("\t") if p.strip()]
  lex = shlex.shlex(line, posix=True)
  lex.whitespace_split, lex.escape, lex.commenters = True, "", ""
  return list(lex)  # ValueError ("No closing quotation") on an unbalanced quote


def parse_class_folders(root: str) -> Annotations:
  """`root/<class>/<video>`: one folder per class, classes sorted by name."""
  if not root:
    raise ValueError("folders format: no video_dir given")
  _require_dir(root)
  names = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
  classes = ClassIndex(names)
  records = []
  for c in names:
    for f in sorted(os.listdir(os.path.join(root, c))):
      if os.path.splitext(f)[1].lower() in VIDEO_EXTENSIONS:
        records.append(VideoRecord(os.path.join(root, c, f), classes.id(c), os.path.join(c, f)))
  return Annotations(records, classes, [])


def parse_annotations(fmt: str, *, annotations: str = "", video_dir: str = "", labels: str = "",
                      num_classes: int | None = None, strict: bool = False) -> Annotations:
  """Dispatch on `fmt` in {'kinetics_csv', 'ssv2_json', 'list', 'folders'}."""
  classes = ClassIndex.from_file(labels) if labels and fmt != "ssv2_json" else None
  if fmt == "kinetics_csv":
    return parse_kinetics_csv(annotations, video_dir, classes, strict)
  if fmt == "ssv2_json":
    return parse_ssv2_json(annotations, labels, video_dir, strict=strict)
  if fmt == "list":
    return parse_list_file(annotations, video_dir, num_classes, classes, strict)
  if fmt == "folders":
    return parse_class_folders(video_dir)
  raise ValueError(f"data.format={fmt!r}: expected kinetics_csv, ssv2_json, list or folders")


# ----------------------------------------------------------------------------------------------
# Record sources (random access, picklable: usable by grain workers).

class VideoFileSource:
  """Random access over `VideoRecord`s; the element is the record (decoded later)."""

  def __init__(self, records: Sequence[VideoRecord]):
    self.records = list(records)

  def __len__(self) -> int:
    return len(self.records)

  def __repr__(self) -> str:
    where = f", e.g. {self.records[0].path}" if self.records else ""
    return f"VideoFileSource({len(self.records)} records{where})"

  def __getitem__(self, i: int) -> dict[str, Any]:
    r = self.records[int(i)]
    return {"path": r.path, "label": r.label, "id": r.id}

  def describe(self, i: int) -> str:
    return self.records[int(i)].path


def prepared_features(mode: str, class_names: Sequence[str]):
  """The tfds `FeaturesDict` of a prepared dataset (`mode` = 'frames' | 'video')."""
  import tensorflow_datasets as tfds
  obj = tfds.features.Tensor(shape=(), dtype=np.object_)
  feats = {"id": tfds.features.Text(), "label": tfds.features.ClassLabel(names=list(class_names)),
           "fps": tfds.features.Tensor(shape=(), dtype=np.float32),
           "num_frames": tfds.features.Tensor(shape=(), dtype=np.int32)}
  if mode == "frames":
    feats["frames"] = tfds.features.Sequence(obj)
  elif mode == "video":
    feats["video"] = obj
  else:
    raise ValueError(f"mode={mode!r}: expected 'frames' or 'video'")
  return tfds.features.FeaturesDict(feats)


def shard_template(data_dir: str, name: str, split: str):
  import tensorflow_datasets as tfds
  return tfds.core.ShardedFileTemplate(
      data_dir=data_dir, template="{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
      dataset_name=name, split=split, filetype_suffix="array_record")


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def _keep_freed_heap() -> None:
  """glibc: serve allocations up to 64 MiB from the heap and keep up to 256 MiB of freed heap.

  A record (every JPEG of a video, several MiB) is read into fresh buffers per clip; by default
  glibc returns such blocks to the kernel when freed, so every read page-faults its buffers in
  again: 8.3 → 3.4 ms CPU per 3.9 MiB record. Process-wide; no-op where mallopt is missing."""
  try:
    libc = ctypes.CDLL(None)
    libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20)
    libc.mallopt(_M_MMAP_THRESHOLD, 64 << 20)
  except (OSError, AttributeError):
    pass


class PreparedSource:
  """Random access over a prepared (tfds ArrayRecord) split; elements are decoded feature dicts.

  Reads shards with grain's `ArrayRecordDataSource`; JPEG frames stay encoded until sampled.
  """

  def __init__(self, data_dir: str, split: str):
    _require_file(os.path.join(data_dir, "dataset_info.json"), "prepared dataset_info")
    with open(os.path.join(data_dir, "dataset_info.json")) as f:
      info = json.load(f)
    splits = {s["name"]: s for s in info.get("splits", [])}
    if split not in splits:
      raise ValueError(f"split={split!r} not in {data_dir} (have {sorted(splits)})")
    s = splits[split]
    n = len(s["shardLengths"])
    tmpl = shard_template(data_dir, info["name"], split)
    self.paths = [os.fspath(tmpl.sharded_filepath(shard_index=i, num_shards=n)) for i in range(n)]
    self.data_dir, self.split = data_dir, split
    self.num_records = sum(int(x) for x in s["shardLengths"])
    self._source = None

  def _lazy(self):
    if self._source is None:
      import grain
      _keep_freed_heap()
      self._source = grain.sources.ArrayRecordDataSource(self.paths)
    return self._source

  def __getstate__(self):
    d = dict(self.__dict__)
    d["_source"] = None
    return d

  def __len__(self) -> int:
    return self.num_records

  def __repr__(self) -> str:
    return f"PreparedSource({self.data_dir!r}, split={self.split!r}, {self.num_records} records)"

  def __getitem__(self, i: int) -> dict[str, Any]:
    # The tf.Example wire format that the tfds features write, parsed directly (tfds' generic
    # decoder costs ~10× more per record). `frames` is the parsed repeated field, a sequence of
    # bytes: a frame is copied out only when indexed (a clip reads 8-16 of ~250).
    from tensorflow_datasets.proto import tf_example_pb2
    f = tf_example_pb2.Example.FromString(self._lazy()[int(i)]).features.feature
    ex = {"id": f["id"].bytes_list.value[0].decode(), "label": int(f["label"].int64_list.value[0]),
          "fps": float(f["fps"].float_list.value[0]),
          "num_frames": int(f["num_frames"].int64_list.value[0])}
    if "frames" in f:
      ex["frames"] = f["frames"].bytes_list.value
    else:
      ex["video"] = f["video"].bytes_list.value[0]
    return ex

  def describe(self, i: int) -> str:
    """`data_dir[split][i] (id)`: the id is the video's annotation id (its relative path)."""
    where = f"{self.data_dir}[{self.split}][{int(i)}]"
    try:
      return f"{where} ({self[i]['id']})"
    except Exception:  # an unreadable record still gets a name
      return where

  @property
  def class_names(self) -> list[str]:
    import tensorflow_datasets as tfds
    feats = tfds.features.FeaturesDict.from_config(self.data_dir)
    return list(feats["label"].names)
