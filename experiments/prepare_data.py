"""Convert an annotated video dataset into a TFDS ArrayRecord dataset (no TensorFlow).

  python experiments/prepare_data.py --format list --annotations DIR/train.txt --video_dir DIR \
      --labels DIR/classes.txt --out /data/mydata --split train --mode frames --fps 25 \
      --short_side 256 --workers 16
  python experiments/prepare_data.py --config configs/uniformerv2/k400_b16_8x224.py:/data/k400 \
      --config.data.video_dir=/raw/k400 --config.data.train_annotations=/raw/k400/train.csv \
      --config.data.format=kinetics_csv --split train

With ``--config FILE[:arg]`` (``--config.a.b=value`` overrides, as in ``train.py``) the
experiment's ``data`` section gives the defaults of the flags not passed: ``--out`` =
``data.data_dir``, ``--format``, ``--video_dir``, ``--labels``, ``--num_classes``,
``--annotations`` (``data.train_annotations`` for ``data.train_split``, else
``data.eval_annotations``), ``--short_side`` = ``data.video_short_side`` and the bad-input
fractions; so the prepared dataset is the one that config trains on.

Output (`--out`, a TFDS folder dataset; read with `tfds.builder_from_directory(out)` or
`vidjax.data.sources.PreparedSource(out, split)`): shards
`{name}-{split}.array_record-XXXXX-of-YYYYY` written with `group_size:1` (random access per video;
uncompressed by default: the payloads are JPEG/mp4 already),
`dataset_info.json`, `features.json`, `label.labels.txt`. Features: see
`vidjax.data.sources.prepared_features`; mode `frames` stores one JPEG per frame resampled to
`--fps` (nearest frame; 0 keeps all) with the short side resized to `--short_side` (DMVR style),
mode `video` stores the original container bytes, or with `--gop N` a libx264 re-encode
(keyframe every N frames, short side `--short_side`): a short GOP bounds the frames decoded per
sampled frame (one-keyframe Kinetics files decode up to the last sampled frame). Records are shuffled once (seeded) so shards
are class-balanced, then cut into contiguous shards. Resumable: a shard is written to `*.tmp`
and renamed with a `.json` sidecar (length, failures) when complete; a rerun skips completed
shards. Run once per split into the same `--out`; the metadata lists every split written so far.

Bad input: annotation problems (missing video, unknown label, malformed line; `file:line: ...`)
and videos that fail to decode (corrupt, no video stream, truncated: more than
`--max_missing_fraction` of the container's declared frames unreadable) are skipped and listed in
`{split}-failures.txt`. When fewer than `--min_usable_fraction` of the annotated videos are found
(a wrong `--video_dir`) or readable, nothing is written for the split (no metadata; a rerun
starts the split over) and the command exits with one line naming the directory; a missing
annotations/labels file or folder is also one line.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing as mp
import os
import sys

import numpy as np
from tqdm import tqdm

from vidjax import cli
from vidjax.data import config, decode, sources, transforms

_DEFAULTS = config.base_data()


def encode_frames(path: str, fps: float, short_side: int, quality: int,
                  max_missing_fraction: float = _DEFAULTS.max_missing_fraction
                  ) -> tuple[list[bytes], float]:
  """All frames resampled to `fps` (nearest source frame), short side → `short_side`, as JPEGs.
  Raises DecodeError for no video stream or a truncated file (`decode.check_complete`)."""
  out: list[bytes] = []
  with decode.open_container(path) as c:
    if not c.streams.video:
      raise decode.DecodeError("no video stream")
    s = c.streams.video[0]
    s.codec_context.thread_count = 1
    h, w = s.codec_context.height, s.codec_context.width
    if short_side:
      h, w = transforms.short_side_size(h, w, short_side)
    src_fps = float(s.average_rate or s.guessed_rate or 25)
    tb = float(s.time_base)
    prev, t0, k, num_source = None, None, 0, 0

    def emit(f):
      out.append(decode.encode_jpeg(f.reformat(width=w, height=h, format="rgb24").to_ndarray(), quality))

    for f in c.decode(s):
      num_source += 1
      t = (f.pts if f.pts is not None else len(out)) * tb
      if fps <= 0:
        emit(f)
        continue
      t0 = t if t0 is None else t0
      while t0 + k / fps <= t + 1e-9:
        target = t0 + k / fps
        emit(prev[1] if prev is not None and target - prev[0] < t - target else f)
        k += 1
      prev = (t, f)
    decode.check_complete(c, num_source, max_missing_fraction)
  if not out:
    raise decode.DecodeError("no frames decoded")
  return out, (fps if fps > 0 else src_fps)


def reencode_video(path: str, gop: int, short_side: int,
                   max_missing_fraction: float = _DEFAULTS.max_missing_fraction) -> bytes:
  """The video as mp4 bytes: libx264 (crf 23, preset veryfast, yuv420p, no B-frames) with a
  keyframe every `gop` frames (no scene-cut keyframes), same frames and rate, short side →
  `short_side` (0 = keep). A short GOP bounds the frames decoded per sampled frame to ≤ `gop`
  (sparse decoding seeks to the keyframe before each target); without B-frames the decoder
  returns a frame without waiting for later packets (GOP 8, 340×256: 3.0× → 4.0× the official
  pipeline's clips/s with device augmentation; files ~2× the one-keyframe original)."""
  import fractions
  import io

  import av
  buf = io.BytesIO()
  with decode.open_container(path) as c, av.open(buf, "w", format="mp4") as out:
    if not c.streams.video:
      raise decode.DecodeError("no video stream")
    s = c.streams.video[0]
    s.codec_context.thread_count = 1
    h, w = s.codec_context.height, s.codec_context.width
    if short_side:
      h, w = transforms.short_side_size(h, w, short_side)
    rate = fractions.Fraction(s.average_rate or s.guessed_rate or 25)
    o = out.add_stream("libx264", rate=rate)
    o.width, o.height, o.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
    o.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "crf": "23",
                 "preset": "veryfast", "bf": "0"}
    n = 0
    for f in c.decode(s):
      g = f.reformat(width=o.width, height=o.height, format="yuv420p")
      g.pts, g.time_base = n, 1 / rate  # frame count: a constant-rate re-encode
      for p in o.encode(g):
        out.mux(p)
      n += 1
    for p in o.encode():
      out.mux(p)
    decode.check_complete(c, n, max_missing_fraction)
  return buf.getvalue()


def encode_record(rec: sources.VideoRecord, mode: str, fps: float, short_side: int,
                  quality: int, features,
                  max_missing_fraction: float = _DEFAULTS.max_missing_fraction,
                  gop: int = 0) -> tuple[str, bytes | None, str]:
  """(record id, serialized example or None, error message); `gop` > 0 (mode 'video'):
  re-encoded by `reencode_video`, else the original bytes."""
  try:
    if mode == "frames":
      frames, out_fps = encode_frames(rec.path, fps, short_side, quality, max_missing_fraction)
      ex = {"frames": frames, "num_frames": len(frames)}
    elif gop > 0:
      data = reencode_video(rec.path, gop, short_side, max_missing_fraction)
    else:
      with open(rec.path, "rb") as f:
        data = f.read()
    if mode != "frames":
      with decode.open_container(data) as c:
        n = decode.packet_index(c).num_frames
        decode.check_complete(c, n, max_missing_fraction)
        out_fps = float(c.streams.video[0].average_rate or 0)
      if n == 0:
        raise decode.DecodeError("no frames")
      ex = {"video": data, "num_frames": n}
    ex.update(id=rec.id, label=rec.label, fps=np.float32(out_fps))
    return rec.id, features.serialize_example(ex), ""
  except Exception as e:  # skip and report any unreadable video
    return rec.id, None, f"{rec.path}: {type(e).__name__}: {e}"


_WORKER = {}


def _init_worker(mode, fps, short_side, quality, class_names, max_missing_fraction, gop=0):
  _WORKER["fn"] = functools.partial(encode_record, mode=mode, fps=fps, short_side=short_side,
                                    quality=quality,
                                    features=sources.prepared_features(mode, class_names),
                                    max_missing_fraction=max_missing_fraction, gop=gop)


def _work(rec):
  return _WORKER["fn"](rec)


def _write_metadata(out: str, name: str, features, split: str, lengths: list[int],
                    num_bytes: int) -> None:
  import tensorflow_datasets as tfds
  split_infos = []
  info_path = os.path.join(out, "dataset_info.json")
  if os.path.exists(info_path):
    with open(info_path) as f:
      old = json.load(f)
    for s in old.get("splits", []):
      if s["name"] != split:
        split_infos.append(tfds.core.SplitInfo(
            name=s["name"], shard_lengths=[int(x) for x in s["shardLengths"]],
            num_bytes=int(s.get("numBytes", 0)), filename_template=sources.shard_template(out, name, s["name"])))
  split_infos.append(tfds.core.SplitInfo(name=split, shard_lengths=lengths, num_bytes=num_bytes,
                                         filename_template=sources.shard_template(out, name, split)))
  tfds.folder_dataset.write_metadata(data_dir=out, features=features, split_infos=split_infos,
                                     check_data=False, description="vidjax prepared videos")


class PrepareError(ValueError):
  """Nothing usable to write (e.g. a wrong --video_dir); the message is one line."""


def prepare(args) -> str:
  from array_record.python.array_record_module import ArrayRecordWriter
  args = resolve(args)
  if args.gop and args.mode != "video":
    raise ValueError(f"--gop {args.gop} re-encodes videos: it needs --mode video")
  ann = sources.parse_annotations(args.format, annotations=args.annotations,
                                  video_dir=args.video_dir, labels=args.labels,
                                  num_classes=args.num_classes or None, strict=args.strict)
  try:
    sources.check_usable(ann, args.min_usable_fraction, args.annotations, args.video_dir)
  except ValueError as e:
    raise PrepareError(f"{e}; nothing written") from None
  num_annotated = len(ann.records) + len(ann.problems)
  records = list(ann.records)
  np.random.default_rng(args.seed).shuffle(records)
  num_shards = args.num_shards or max(1, math.ceil(len(records) / args.records_per_shard))
  bounds = np.linspace(0, len(records), num_shards + 1).round().astype(int)
  os.makedirs(args.out, exist_ok=True)
  features = sources.prepared_features(args.mode, ann.classes.names)
  feats_path = os.path.join(args.out, "features.json")
  if os.path.exists(feats_path):  # splits written earlier must share features and classes
    import tensorflow_datasets as tfds
    old = tfds.features.FeaturesDict.from_config(args.out)
    if old["label"].names != features["label"].names or set(old.keys()) != set(features.keys()):
      raise ValueError(f"{args.out} already holds a dataset with other classes/mode")
  tmpl = sources.shard_template(args.out, args.name, args.split)
  paths = [os.fspath(tmpl.sharded_filepath(shard_index=i, num_shards=num_shards))
           for i in range(num_shards)]
  todo = [i for i in range(num_shards) if not os.path.exists(paths[i] + ".json")]
  done_videos = sum(bounds[i + 1] - bounds[i] for i in range(num_shards) if i not in todo)
  print(f"{len(records)} videos → {num_shards} shards in {args.out} "
        f"({num_shards - len(todo)} shards already complete)")
  pending = [records[j] for i in todo for j in range(bounds[i], bounds[i + 1])]
  init = (args.mode, args.fps, args.short_side, args.quality, ann.classes.names,
          args.max_missing_fraction, args.gop)
  if args.workers > 0:
    pool = mp.get_context("spawn").Pool(args.workers, _init_worker, init)
    results = pool.imap(_work, pending, chunksize=1)
  else:
    pool = None
    _init_worker(*init)
    results = map(_work, pending)
  bar = tqdm(total=len(records), initial=done_videos, unit="video", dynamic_ncols=True)
  try:
    for i in todo:
      writer = ArrayRecordWriter(paths[i] + ".tmp", f"group_size:1,{args.compression}")
      n, failures, nbytes = 0, [], 0
      for _ in range(bounds[i], bounds[i + 1]):
        vid, data, err = next(results)
        if data is None:
          failures.append(err)
          tqdm.write(f"skipped: {err}")
        else:
          writer.write(data)
          n += 1
          nbytes += len(data)
        bar.update(1)
      writer.close()
      with open(paths[i] + ".json.tmp", "w") as f:
        json.dump({"num_records": n, "num_bytes": nbytes, "failures": failures}, f)
      os.replace(paths[i] + ".tmp", paths[i])
      os.replace(paths[i] + ".json.tmp", paths[i] + ".json")
  finally:
    bar.close()
    if pool is not None:
      pool.terminate()
  lengths, total_bytes, failures = [], 0, [str(p) for p in ann.problems]
  for p in paths:
    with open(p + ".json") as f:
      side = json.load(f)
    lengths.append(side["num_records"])
    total_bytes += side["num_bytes"]
    failures += side["failures"]
  if sum(lengths) < args.min_usable_fraction * num_annotated or not sum(lengths):
    for p in paths:  # refuse the split; a rerun encodes it again
      for f in (p, p + ".json"):
        if os.path.exists(f):
          os.remove(f)
    first = f"; first failure: {failures[0]}" if failures else ""
    raise PrepareError(f"{sum(lengths)} of {num_annotated} annotated videos readable under "
                       f"{args.video_dir}{first} (minimum fraction {args.min_usable_fraction}); "
                       "nothing written")
  with open(os.path.join(args.out, f"{args.split}-failures.txt"), "w") as f:
    f.write("".join(x + "\n" for x in failures))
  _write_metadata(args.out, args.name, features, args.split, lengths, total_bytes)
  print(f"{sum(lengths)} records written, {len(failures)} failures, {total_bytes / 2**20:.1f} MiB")
  return args.out


# Flags whose default comes from the experiment config's ``data`` section under --config (else
# the value here): flag -> (config.data field, default without a config).
FROM_CONFIG = {
    "format": ("format", "list"), "video_dir": ("video_dir", ""), "labels": ("labels", ""),
    "num_classes": ("num_classes", 0), "out": ("data_dir", ""),
    "short_side": ("video_short_side", 256),
    "max_missing_fraction": ("max_missing_fraction", _DEFAULTS.max_missing_fraction),
    "min_usable_fraction": ("min_usable_fraction", _DEFAULTS.min_usable_fraction),
}


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", metavar="FILE[:arg]", help="experiment config whose data section "
                 "gives the defaults below (--config.a.b=value overrides a field)")
  p.add_argument("--format", choices=["kinetics_csv", "ssv2_json", "list", "folders"],
                 help="default: list")
  p.add_argument("--annotations", help="default: none (folders format)")
  p.add_argument("--video_dir", help="required (or data.video_dir of --config)")
  p.add_argument("--labels", help="class names (txt/json); ssv2: labels JSON")
  p.add_argument("--num_classes", type=int, help="default: 0 (from the labels)")
  p.add_argument("--out", help="required (or data.data_dir of --config)")
  p.add_argument("--name", default="videos")
  p.add_argument("--split", default="train")
  p.add_argument("--mode", default="frames", choices=["frames", "video"])
  p.add_argument("--fps", type=float, default=25.0, help="frames mode: output fps (0 = keep all)")
  p.add_argument("--short_side", type=int, help="frames mode: 0 = keep size; default 256")
  p.add_argument("--quality", type=int, default=90)
  p.add_argument("--gop", type=int, default=0, help="video mode: re-encode (libx264) with a "
                 "keyframe every GOP frames and the short side at --short_side (0 = store the "
                 "original bytes); cheaper sparse decoding, e.g. 8-25")
  p.add_argument("--compression", default="uncompressed", choices=["uncompressed", "snappy", "brotli", "zstd"],
                 help="ArrayRecord chunk codec (JPEG/mp4 payloads are already compressed)")
  p.add_argument("--num_shards", type=int, default=0, help="0: ceil(N / records_per_shard)")
  p.add_argument("--records_per_shard", type=int, default=1000)
  p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--strict", action="store_true", help="fail on any annotation problem")
  p.add_argument("--max_missing_fraction", type=float,
                 help="a video missing more than this fraction of its declared frames is "
                      f"truncated (skipped); 1 disables the check; default "
                      f"{_DEFAULTS.max_missing_fraction}")
  p.add_argument("--min_usable_fraction", type=float,
                 help="refuse when fewer than this fraction of the annotated videos are found "
                      f"or readable; default {_DEFAULTS.min_usable_fraction}")
  return p


def resolve(args: argparse.Namespace, data=None) -> argparse.Namespace:
  """Fills the flags left unset from ``data`` (an experiment's ``config.data``) or the defaults."""
  for flag, (field, default) in FROM_CONFIG.items():
    if getattr(args, flag) is None:
      setattr(args, flag, data[field] if data is not None else default)
  if args.annotations is None:
    args.annotations = "" if data is None else (
        data.train_annotations if args.split == data.train_split else data.eval_annotations)
  for flag in ("video_dir", "out"):
    if not getattr(args, flag):
      raise ValueError(f"--{flag} is required (or --config with data."
                       f"{FROM_CONFIG[flag][0]} set)")
  return args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  """The command line, ``--config FILE[:arg]`` and its ``--config.*`` overrides resolved."""
  argv, overrides = cli.split_overrides(sys.argv[1:] if argv is None else argv)
  args = parser().parse_args(argv)
  if overrides and not args.config:
    raise cli.ConfigError(f"{overrides[0]} needs --config FILE")
  data = None
  if args.config:
    data = cli.load_config(args.config, overrides).get("data")
    if data is None:
      raise cli.ConfigError(f"--config {args.config}: the config has no data section")
  return resolve(args, data)


def main(argv=None) -> str:
  """CLI: bad input (a bad --config or field, missing file or folder, wrong --video_dir, bad
  annotations) is one ``error:`` line and exit code 2 instead of a traceback."""
  try:
    return prepare(parse_args(argv))
  except (OSError, ValueError) as e:  # ConfigError, AnnotationError, PrepareError, ...
    cli.fail(f"prepare_data: {e}".replace("\n", "; "))


if __name__ == "__main__":
  main()
