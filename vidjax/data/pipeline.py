"""grain pipelines: global shuffle → random_map(decode+augment) → batch → block-wise
per-process slice → mp_prefetch, plus `to_global` for sharded `jax.Array` batches.

Sizes. `data.batch_size` (clips, repeated samples included) and `data.eval_batch_size` (videos)
are GLOBAL: all processes together. Each process gets `size / process_count` (a ValueError names
the field when it does not divide; the per-process train batch must also divide by
`train.num_samples`).

Train chain (`train_dataset`), with P = process_count, b = batch_size / P / num_samples records:
  MapDataset.range(N).seed(seed).shuffle()    global, reshuffled every epoch, same on every host
  .repeat(epochs).random_map(ClipLoader)      per-record RNG from (seed, global position)
  .batch(b)[process_index::P]                 global step k = blocks kP … kP+P-1
  (.map(merge repeated samples)).to_iter_dataset().mp_prefetch(workers)
The global batch of step k is therefore the same records, in the same order, with the same
augmentation, for every P that divides it: concatenating the process-local batches in
process-index order gives exactly the single-process batch (a mesh whose data axis lists
devices in process order makes `to_global` assemble that order). The map is lazy: each process
only decodes its own blocks. A finite run (`num_epochs` ≥ 0) is cut to whole global batches so
every process yields the same number of steps.

Train batches (dicts of numpy arrays):
  clip          uint8 [B, T, H, W, 3]; with num_samples R the R augmentations of a record are
                consecutive rows
  label         int32 [B]
  index         int64 [B]   record index delivered
  num_replaced  int32 [B]   undecodable records replaced while producing this record (on the
                            first of its R rows only, so `sum` counts each replacement once)
  replaced      int64 [B, max_replacements]  the record indices that failed while producing
                            this row, -1 padded (first row of a record only, like num_replaced);
                            `source.describe(i)` names the file, e.g. for `workdir/bad_videos.txt`
  blank         bool  [B]   every frame of the clip is one uniform colour. RandAugment's
                            translations (up to 0.45 of the frame, timm and the released recipe)
                            can move a small random-resized crop entirely off the frame, leaving
                            only fill colour (4 of 2000 clips of the Sth-Sth recipe on synthetic
                            videos); a uniform source video gives it too. The test does not
                            depend on the fill value. Count it per log interval.
  aug_*                     with data.train.augment_on='device' only: `clip` is the host crop
                            (geometry applied), these the sampled colour ops, flip, jitter and
                            gray per row (`device_aug.encode_params`); the train step applies
                            them (`device_aug.apply`) before `mixing.normalize`; with
                            data.train.device_canvas `clip` is [B, T, Hc, Wc, 3] whole frames
                            and aug_warp [B, 2, 3], aug_hw [B, 2] place the crop
Undecodable records (corrupt, truncated, empty, missing, no video stream) are replaced by a
record drawn from `np.random.default_rng([seed, index, attempt])`, at most `max_replacements`
times in a row (then RuntimeError); each pipeline logs every bad path once (WARNING on the
`vidjax.data` logger; from grain workers this goes to their stderr, hence `replaced`).

Eval batches (`eval_dataset`), one pass, every video exactly once, views kept together:
  clip    uint8 [B, V, T, H, W, 3], V = num_clips × num_crops (clip-major)
  label   int32 [B]   index int64 [B]
  valid   bool  [B]   True for a decoded video (count it in the metric)
  failed  bool  [B]   the video could not be decoded: never substituted; its own index and
                      label, a zero clip, valid=False. Report `source.describe(i)` for
                      `index[failed]`.
Padding (valid=False, failed=False, index −1, label −1, zero clip) rounds the split up to a
multiple of the global eval batch; global eval batches are independent of P as in training.

`train_dataset`, `eval_dataset` raise ValueError for a source without records. The iterators
are grain DatasetIterators: `get_state`/`set_state` and orbax `grain.checkpoint.CheckpointSave`
/ `CheckpointRestore` resume exactly, in-process or with mp_prefetch workers.

grain reads a few of its absl flags while starting workers; outside an absl app (a script, a
notebook, pytest) those flags are unparsed and reading them raises. Before building a pipeline,
grain's own flags (and only them) are marked as given at their current values unless the
application has parsed its flags already; an application's flags stay untouched and a later
`app.run`/`FLAGS(argv)` still parses everything. Workers are started with `spawn`: a script that
iterates a pipeline with `workers > 0` needs the usual `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import grain
import jax
import numpy as np

from vidjax.data import config as data_config
from vidjax.data import decode, device_aug, sampling, sources, transforms

_log = logging.getLogger("vidjax.data")


def _plain(cfg) -> dict:
  return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)


def is_blank(clip: np.ndarray) -> bool:
  """Every frame of `clip` [T, H, W, C] is one uniform colour (a coarse grid first: most clips
  differ there, which spares the full comparison)."""
  ref = clip[:, :1, :1]
  return bool((clip[:, ::8, ::8] == ref).all() and (clip == ref).all())


class ClipLoader:
  """Reads record `index`, samples frame indices, decodes only those, augments (picklable)."""

  def __init__(self, source, cfg, train: bool):
    self.source = source
    self.cfg = _plain(cfg)
    self.train = train
    self._logged: set[str] = set()  # paths already logged by this pipeline (per process)
    if self.cfg["sampling"] not in ("tsn", "dense"):
      raise ValueError(f"data.sampling={self.cfg['sampling']!r}: expected 'tsn' or 'dense'")
    if self.cfg["train"]["randaug_mode"] not in ("exact", "fused"):
      raise ValueError(f"data.train.randaug_mode={self.cfg['train']['randaug_mode']!r}: "
                       "expected 'exact' or 'fused'")
    augment_on, canvas = data_config.resolve_augment_on(cfg)
    self.cfg["train"].update(augment_on=augment_on, device_canvas=canvas)
    self.device_aug = train and augment_on == "device"
    if self.device_aug and self.cfg["train"]["randaug_mode"] == "exact":
      raise ValueError("data.train.augment_on='device' needs data.train.randaug_mode='fused' "
                       "(the colour ops run after the crop)")
    if self.cfg["train"]["jitter_mode"] not in transforms.JITTER_MODES:
      raise ValueError(f"data.train.jitter_mode={self.cfg['train']['jitter_mode']!r}: "
                       f"expected one of {transforms.JITTER_MODES}")

  # -- decoding ------------------------------------------------------------------------------
  @contextlib.contextmanager
  def _frames_source(self, rec: dict) -> Iterator[tuple[int, Callable, tuple[int, int]]]:
    """(num_frames, get(indices, decode_hw_or_None) -> uint8 [T,H,W,3], source (h, w)); a video
    stays open (one container for the index and every decode) until the block exits."""
    c = self.cfg
    if "frames" in rec:
      jpegs = rec["frames"]
      if len(jpegs) == 0:
        raise decode.DecodeError("no frames")
      hw = decode.jpeg_size(jpegs[0])

      def get_jpegs(idx, size=None):
        return [decode.decode_jpeg(jpegs[i], size) for i in idx]
      yield len(jpegs), get_jpegs, hw
      return
    with decode.open_container(rec["video"] if "video" in rec else rec["path"]) as cont:
      if not cont.streams.video:
        raise decode.DecodeError("no video stream")
      st = cont.streams.video[0]
      h, w = st.codec_context.height, st.codec_context.width
      index = decode.packet_index(cont)
      decode.check_complete(cont, index.num_frames, c["max_missing_fraction"])
      if index.num_frames == 0 or h == 0 or w == 0:
        raise decode.DecodeError("empty video")
      if c["video_short_side"]:
        h, w = transforms.short_side_size(h, w, c["video_short_side"])

      def get(idx, size=None):
        return decode.decode_video(cont, idx, threads=c["video_threads"], size=size or (h, w),
                                   index=index)
      yield index.num_frames, get, (h, w)

  # -- one element ---------------------------------------------------------------------------
  def _train_clip(self, n, get, hw, rng) -> np.ndarray:
    return self._train_sample(n, get, hw, rng)[0]

  def _train_sample(self, n, get, hw, rng) -> tuple[np.ndarray, dict | None]:
    """(uint8 clip [T, H, W, 3], device augmentation parameters or None on the host path)."""
    c, t = self.cfg, self.cfg["train"]
    idx = sampling.train_indices(c["sampling"], n, c["num_frames"], c["stride"], rng)
    box = transforms.sample_rrc(rng, hw[0], hw[1], t["scale"], t["ratio"])
    out = (c["crop_size"], c["crop_size"])
    flip = rng.random() < t["flip_prob"]
    ops = (transforms.sample_rand_augment(rng, **transforms.parse_rand_augment(t["rand_augment"]))
           if t["rand_augment"] else [])
    frames = get(idx, transforms.decode_size(hw[0], hw[1], box, out))
    canvas = tuple(t.get("device_canvas") or ()) if self.device_aug else ()
    geometry = None
    if canvas and all(a <= b for a, b in zip(frames[0].shape[:2], canvas)):
      # whole decoded frames go to the device, which cuts the crop (`device_aug.warp`)
      dh, dw = frames[0].shape[:2]
      geo = [o for o in ops if o[0] in transforms.GEOMETRIC_OPS]
      geometry = (transforms.warp_matrix(geo, hw, box, out, (dh, dw))[:2], (dh, dw))
      ops = [o for o in ops if o[0] not in transforms.GEOMETRIC_OPS]
      clip = np.zeros((len(frames),) + canvas + (3,), np.uint8)
      for i, f in enumerate(frames):
        clip[i, :dh, :dw] = f
      return self._finish_device(clip, ops, flip, rng, geometry)
    imgs = transforms.to_pil(frames)
    dbox = transforms.scale_box(box, hw, imgs[0].size[::-1])  # box in decoded pixels
    if t["randaug_mode"] == "exact":  # released order: every op on the full frame, then crop
      imgs = transforms.rand_augment(imgs, ops, interpolation=t["randaug_interpolation"])
      imgs = transforms.resized_crop(imgs, dbox, out, t["resample"])
      ops = []
    else:  # 'fused': geometric ops and the crop as one warp, then the colour ops
      geo = [o for o in ops if o[0] in transforms.GEOMETRIC_OPS]
      imgs = (transforms.fused_warp(imgs, geo, hw, box, out, t["resample"]) if geo
              else transforms.resized_crop(imgs, dbox, out, t["resample"]))
      ops = [o for o in ops if o[0] not in transforms.GEOMETRIC_OPS]
    if self.device_aug:  # the rest runs in the train step (`device_aug.apply`)
      clip = transforms.to_numpy(imgs)
      if canvas:  # frame larger than the canvas: the crop cut here, placed top-left
        clip = np.pad(clip, ((0, 0), (0, canvas[0] - out[0]), (0, canvas[1] - out[1]), (0, 0)))
        geometry = (np.eye(3)[:2], out)
      return self._finish_device(clip, ops, flip, rng, geometry)
    jitter, gray = self._sample_jitter(rng, len(imgs))
    imgs = transforms.rand_augment(imgs, ops)
    if flip:
      imgs = transforms.hflip(imgs)
    if jitter is not None:
      imgs = transforms.apply_jitter_and_gray(imgs, jitter, gray)
    return transforms.to_numpy(imgs), None

  def _sample_jitter(self, rng, num_frames: int):
    t = self.cfg["train"]
    if t["color_jitter_prob"] > 0 or t["grayscale_prob"] > 0:
      return transforms.sample_jitter_and_gray(rng, num_frames, t["color_jitter_prob"],
                                               t["color_jitter"], t["grayscale_prob"],
                                               t["jitter_mode"])
    return None, None

  def _finish_device(self, clip, ops, flip, rng, geometry):
    jitter, gray = self._sample_jitter(rng, len(clip))
    params = device_aug.encode_params(len(clip), ops, flip, jitter, gray)
    if geometry is not None:
      params["aug_warp"] = np.asarray(geometry[0], np.float32)
      params["aug_hw"] = np.asarray(geometry[1], np.int32)
    return clip, params

  def _eval_views(self, n, get, hw) -> np.ndarray:
    c, e = self.cfg, self.cfg["eval"]
    views = []
    for k in range(e["num_clips"]):
      idx = sampling.eval_indices(c["sampling"], n, c["num_frames"], c["stride"], k, e["num_clips"])
      rh, rw = transforms.short_side_size(hw[0], hw[1], e["short_side"])
      imgs = transforms.to_pil(get(idx, (rh, rw)))
      imgs = transforms.resize_short(imgs, e["short_side"], e["resample"])
      h, w = imgs[0].size[1], imgs[0].size[0]
      for box in transforms.uniform_crop_boxes(h, w, c["crop_size"], e["num_crops"]):
        views.append(transforms.to_numpy(transforms.crop(imgs, box)))
    return np.stack(views)

  def _train_element(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
    rec = self.source[index]
    reps = self.cfg["train"]["num_samples"]
    with self._frames_source(rec) as (n, get, hw):
      clips, params = zip(*[self._train_sample(n, get, hw, rng) for _ in range(reps)])
    blank = [is_blank(x) for x in clips]
    if reps == 1:
      el = {"clip": clips[0], "label": np.int32(rec["label"]), "blank": np.bool_(blank[0])}
      el.update(params[0] or {})
      return el
    el = {"clip": np.stack(clips), "label": np.int32(rec["label"]), "blank": np.array(blank)}
    if self.device_aug:
      el.update({k: np.stack([p[k] for p in params]) for k in params[0]})
    return el

  def _warn(self, index: int, error: Exception, action: str) -> str:
    where = self.source.describe(index) if hasattr(self.source, "describe") else str(index)
    if where not in self._logged:
      self._logged.add(where)
      _log.warning("undecodable video %s: %s (%s)", action, where, error)
    return where

  def _eval_shape(self) -> tuple[int, ...]:
    c, e = self.cfg, self.cfg["eval"]
    return (e["num_clips"] * e["num_crops"], c["num_frames"], c["crop_size"], c["crop_size"], 3)

  def _eval_element(self, index: int) -> dict[str, Any]:
    """Video `index`, never substituted: failed → zero clip, valid=False; index ≥ N: padding."""
    el = {"clip": None, "label": np.int32(-1), "index": np.int64(-1), "valid": np.bool_(False),
          "failed": np.bool_(False)}
    if index < len(self.source):
      el["index"] = np.int64(index)
      try:
        rec = self.source[index]
        el["label"] = np.int32(rec["label"])
        with self._frames_source(rec) as source:
          el["clip"] = self._eval_views(*source)
        el["valid"] = np.bool_(True)
      except (decode.DecodeError, OSError) as e:
        self._warn(index, e, "excluded from evaluation")
        el["failed"] = np.bool_(True)
    if el["clip"] is None:
      el["clip"] = np.zeros(self._eval_shape(), np.uint8)
    return el

  def __call__(self, index: int, rng: np.random.Generator | None = None) -> dict[str, Any]:
    index = int(index)
    if not self.train:
      return self._eval_element(index)
    n, max_rep = len(self.source), self.cfg["max_replacements"]
    replaced = np.full((max_rep,), -1, np.int64)
    cur = index % n
    for attempt in range(max_rep + 1):
      try:
        el = self._train_element(cur, rng)
        el.update(index=np.int64(cur), num_replaced=np.int32(attempt), replaced=replaced)
        return el
      except (decode.DecodeError, OSError) as e:
        last = e
        where = self._warn(cur, e, "replaced")
        if attempt < max_rep:
          replaced[attempt] = cur
        cur = int(np.random.default_rng([self.cfg["seed"], index, attempt]).integers(n))
    raise RuntimeError(f"{max_rep} consecutive undecodable records after record {index}; check "
                       f"the data (last: {where}: {last})") from last


_PER_SAMPLE = ("clip", "blank", "aug_warp", "aug_hw") + tuple(device_aug.AUG_KEYS)  # [b, R, ...]
_ONCE_PER_RECORD = {"num_replaced": 0, "replaced": -1}  # kept on the first of the R rows


def _merge_samples(batch: dict) -> dict:
  """[b, R, ...] → [b·R, ...] for repeated augmentation: the R samples of a record consecutive,
  per-record fields repeated, replacement counts on the first row only (counted once)."""
  r = batch["clip"].shape[1]
  out = {}
  for k, v in batch.items():
    if k in _PER_SAMPLE:
      out[k] = v.reshape((-1,) + v.shape[2:])
    else:
      out[k] = np.repeat(v, r, axis=0)
      if k in _ONCE_PER_RECORD:
        rest = np.ones(len(out[k]), bool)
        rest[::r] = False
        out[k][rest] = _ONCE_PER_RECORD[k]
  return out


def make_source(cfg, split: str):
  """The record source of `split` ('train' or 'eval') from `config.data`."""
  if cfg.source == "prepared":
    return sources.PreparedSource(cfg.data_dir, cfg.train_split if split == "train" else cfg.eval_split)
  if cfg.source == "files":
    annotations = cfg.train_annotations if split == "train" else cfg.eval_annotations
    ann = sources.parse_annotations(cfg.format, annotations=annotations, video_dir=cfg.video_dir,
                                    labels=cfg.labels, num_classes=cfg.num_classes)
    try:
      sources.check_usable(ann, cfg.min_usable_fraction, annotations, cfg.video_dir)
    except ValueError as e:
      raise ValueError(f"data.video_dir / data.{split}_annotations: {e}") from None
    return sources.VideoFileSource(ann.records)
  raise ValueError(f"data.source={cfg.source!r}: expected 'prepared' or 'files'")


def _grain_flags_usable(flag_values=None) -> None:
  """Makes grain's absl flags readable when the application has not parsed flags (a script, a
  notebook, pytest): each flag defined by a `grain` module is marked as given at its current
  value, as grain does itself in its worker processes. Nothing happens once flags are parsed
  (an absl app), and other flags are not touched (they still raise if read unparsed)."""
  from absl import flags
  fv = flags.FLAGS if flag_values is None else flag_values
  if fv.is_parsed():
    return
  for module, defined in fv.flags_by_module_dict().items():
    if module == "grain" or module.startswith("grain."):
      for f in defined:
        f.present = f.present or 1


def _process(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  pi = jax.process_index() if process_index is None else int(process_index)
  pc = jax.process_count() if process_count is None else int(process_count)
  if not 0 <= pi < pc:
    raise ValueError(f"process_index={pi} outside [0, process_count={pc})")
  return pi, pc


def _per_process(size: int, pc: int, field: str) -> int:
  if size <= 0 or size % pc:
    raise ValueError(f"data.{field}={size} is the global batch (all processes together): it must "
                     f"be a positive multiple of process_count={pc}")
  return size // pc


def _require_records(source, split: str) -> None:
  if len(source) == 0:
    raise ValueError(f"{split} source {source!r} has no records")


def _finish(ds: grain.MapDataset, cfg, workers: int | None) -> grain.IterDataset:
  _grain_flags_usable()
  it = ds.to_iter_dataset(grain.ReadOptions(num_threads=cfg.threads,
                                            prefetch_buffer_size=max(cfg.prefetch, 1)))
  workers = cfg.workers if workers is None else workers
  if workers > 0:
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers,
                                                     per_worker_buffer_size=cfg.prefetch))
  return it


def train_dataset(cfg, source=None, *, process_index: int | None = None,
                  process_count: int | None = None, workers: int | None = None) -> grain.IterDataset:
  """Infinite (or `num_epochs`) shuffled, augmented train batches of this process: global
  batch `data.batch_size` split block-wise over processes (see the module docstring)."""
  source = make_source(cfg, "train") if source is None else source
  _require_records(source, "train")
  pi, pc = _process(process_index, process_count)
  per = _per_process(cfg.batch_size, pc, "batch_size")
  reps = cfg.train.num_samples
  if per % reps:
    raise ValueError(f"data.batch_size={cfg.batch_size}: the per-process batch {per} "
                     f"(process_count={pc}) is not divisible by data.train.num_samples={reps}")
  loader = ClipLoader(source, cfg, train=True)
  ds = grain.MapDataset.range(len(source)).seed(cfg.seed).shuffle()
  ds = ds.repeat(None if cfg.num_epochs < 0 else cfg.num_epochs)
  if cfg.num_epochs >= 0:  # whole global batches only: every process takes the same steps
    g = cfg.batch_size // reps
    ds = ds[:len(ds) // g * g]
  ds = ds.random_map(loader).batch(per // reps, drop_remainder=True)[pi::pc]
  if reps > 1:
    ds = ds.map(_merge_samples)
  return _finish(ds, cfg, workers)


def eval_dataset(cfg, source=None, *, process_index: int | None = None,
                 process_count: int | None = None, workers: int | None = None) -> grain.IterDataset:
  """One pass over the eval split, every video once, views grouped; global batch
  `data.eval_batch_size` split block-wise over processes; failed videos and padding have
  `valid=False` (see the module docstring)."""
  source = make_source(cfg, "eval") if source is None else source
  _require_records(source, "eval")
  pi, pc = _process(process_index, process_count)
  per = _per_process(cfg.eval_batch_size, pc, "eval_batch_size")
  g = cfg.eval_batch_size
  total = math.ceil(len(source) / g) * g
  ds = grain.MapDataset.range(total).map(ClipLoader(source, cfg, train=False))
  ds = ds.batch(per, drop_remainder=True)[pi::pc]
  return _finish(ds, cfg, workers)


def close(iterator) -> None:
  """Stops mp_prefetch workers and frees shared memory (call before exit)."""
  if hasattr(iterator, "close"):
    iterator.close()


def data_sharding(mesh: jax.sharding.Mesh, axes: tuple[str, ...] = ("data",)) -> jax.sharding.NamedSharding:
  """Batch dim sharded over the mesh's data axes, the rest replicated."""
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(axes))


def to_global(batch: dict, sharding: jax.sharding.Sharding) -> dict:
  """Process-local numpy batch → global `jax.Array`s (`make_array_from_process_local_data`)."""
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
                      batch)
