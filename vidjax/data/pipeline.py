"""grain pipelines: global shuffle → random_map(decode+augment) → per-process slice → batch →
mp_prefetch, plus `to_global` for sharded `jax.Array` batches.

Train chain (`train_dataset`):
  MapDataset.range(N).seed(seed).shuffle()    global, reshuffled every epoch, same on every host
  .repeat(epochs).random_map(ClipLoader)      per-record RNG from (seed, global position)
  [process_index::process_count]              each record once per epoch across hosts
  .batch(per_host_batch).to_iter_dataset().mp_prefetch(workers)
Mapping before slicing keeps augmentation bit-identical for any number of hosts/workers (the
map is lazy: each host only computes its own slice). Batches are dicts of numpy arrays:
`clip` uint8 `[B, T, H, W, 3]`, `label` int32 `[B]`, `index` int64 `[B]` (record index),
`num_replaced` int32 `[B]` (undecodable records replaced while producing this element; sum it
for the metric). Eval batches (`eval_dataset`) keep the views of a video together:
`clip` `[B, V, T, H, W, 3]` with V = num_clips × num_crops (clip-major), plus `valid` bool `[B]`
(False on padding that rounds the split up to a multiple of the global batch).

Undecodable records (corrupt, truncated, empty, missing) are replaced by a record drawn from
`np.random.default_rng([seed, index, attempt])`, logged once per path and counted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import grain
import jax
import numpy as np

from vidjax.data import decode, sampling, sources, transforms

_LOGGED: set[str] = set()


def _plain(cfg) -> dict:
  return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)


class ClipLoader:
  """Reads record `index`, samples frame indices, decodes only those, augments (picklable)."""

  def __init__(self, source, cfg, train: bool):
    self.source = source
    self.cfg = _plain(cfg)
    self.train = train
    if self.cfg["sampling"] not in ("tsn", "dense"):
      raise ValueError(f"data.sampling={self.cfg['sampling']!r}: expected 'tsn' or 'dense'")
    if self.cfg["train"]["randaug_mode"] not in ("exact", "fused"):
      raise ValueError(f"data.train.randaug_mode={self.cfg['train']['randaug_mode']!r}: "
                       "expected 'exact' or 'fused'")

  # -- decoding ------------------------------------------------------------------------------
  def _frames_source(self, rec: dict) -> tuple[int, Callable, tuple[int, int]]:
    """(num_frames, get(indices, decode_hw_or_None) -> uint8 [T,H,W,3], source (h, w))."""
    c = self.cfg
    if "frames" in rec:
      jpegs = rec["frames"]
      if len(jpegs) == 0:
        raise decode.DecodeError("no frames")
      hw = decode.jpeg_size(jpegs[0])

      def get(idx, size=None):
        return [decode.decode_jpeg(jpegs[i], size) for i in idx]
      return len(jpegs), get, hw
    src = rec["video"] if "video" in rec else rec["path"]
    with decode.open_container(src) as cont:
      if not cont.streams.video:
        raise decode.DecodeError("no video stream")
      st = cont.streams.video[0]
      h, w = st.codec_context.height, st.codec_context.width
      index = decode.packet_index(cont)
    if index.num_frames == 0 or h == 0 or w == 0:
      raise decode.DecodeError("empty video")
    if c["video_short_side"]:
      h, w = transforms.short_side_size(h, w, c["video_short_side"])

    def get(idx, size=None):
      return decode.decode_video(src, idx, threads=c["video_threads"], size=size or (h, w),
                                 index=index)
    return index.num_frames, get, (h, w)

  # -- one element ---------------------------------------------------------------------------
  def _train_clip(self, n, get, hw, rng) -> np.ndarray:
    c, t = self.cfg, self.cfg["train"]
    idx = sampling.train_indices(c["sampling"], n, c["num_frames"], c["stride"], rng)
    box = transforms.sample_rrc(rng, hw[0], hw[1], t["scale"], t["ratio"])
    out = (c["crop_size"], c["crop_size"])
    flip = rng.random() < t["flip_prob"]
    ops = (transforms.sample_rand_augment(rng, **transforms.parse_rand_augment(t["rand_augment"]))
           if t["rand_augment"] else [])
    imgs = transforms.to_pil(get(idx, transforms.decode_size(hw[0], hw[1], box, out)))
    dbox = transforms.scale_box(box, hw, imgs[0].size[::-1])  # box in decoded pixels
    if t["randaug_mode"] == "exact":  # released order: every op on the full frame, then crop
      imgs = transforms.rand_augment(imgs, ops, interpolation=t["randaug_interpolation"])
      imgs = transforms.resized_crop(imgs, dbox, out, t["resample"])
    else:  # 'fused': geometric ops and the crop as one warp, then the colour ops
      geo = [o for o in ops if o[0] in transforms.GEOMETRIC_OPS]
      imgs = (transforms.fused_warp(imgs, geo, hw, box, out, t["resample"]) if geo
              else transforms.resized_crop(imgs, dbox, out, t["resample"]))
      imgs = transforms.rand_augment(imgs, [o for o in ops if o[0] not in transforms.GEOMETRIC_OPS])
    if flip:
      imgs = transforms.hflip(imgs)
    if t["color_jitter_prob"] > 0 or t["grayscale_prob"] > 0:
      imgs = transforms.jitter_and_gray(rng, imgs, t["color_jitter_prob"], t["color_jitter"],
                                        t["grayscale_prob"], t["jitter_per_frame"])
    return transforms.to_numpy(imgs)

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

  def _element(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
    rec = self.source[index]
    n, get, hw = self._frames_source(rec)
    if self.train:
      reps = self.cfg["train"]["num_samples"]
      clips = [self._train_clip(n, get, hw, rng) for _ in range(reps)]
      clip = clips[0] if reps == 1 else np.stack(clips)
    else:
      clip = self._eval_views(n, get, hw)
    return {"clip": clip, "label": np.int32(rec["label"])}

  def __call__(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
    n = len(self.source)
    index = int(index)
    valid = index < n
    cur = index % n
    for attempt in range(self.cfg["max_replacements"] + 1):
      try:
        el = self._element(cur, rng)
        el.update(index=np.int64(cur), num_replaced=np.int32(attempt))
        if not self.train:
          el["valid"] = np.bool_(valid)
        return el
      except (decode.DecodeError, OSError) as e:
        last = e
        where = self.source.describe(cur) if hasattr(self.source, "describe") else str(cur)
        if where not in _LOGGED:
          _LOGGED.add(where)
          logging.warning("undecodable video replaced: %s (%s)", where, e)
        cur = int(np.random.default_rng([self.cfg["seed"], index, attempt]).integers(n))
    raise RuntimeError(f"{self.cfg['max_replacements']} consecutive undecodable records after "
                       f"record {index}; check the data (last: {where})") from last


def _merge_samples(batch: dict) -> dict:
  """[B/R, R, ...] → [B, ...] for repeated augmentation (labels repeated accordingly)."""
  r = batch["clip"].shape[1]
  out = {"clip": batch["clip"].reshape((-1,) + batch["clip"].shape[2:])}
  for k, v in batch.items():
    if k != "clip":
      out[k] = np.repeat(v, r, axis=0)
  return out


def make_source(cfg, split: str):
  """The record source of `split` ('train' or 'eval') from `config.data`."""
  if cfg.source == "prepared":
    return sources.PreparedSource(cfg.data_dir, cfg.train_split if split == "train" else cfg.eval_split)
  if cfg.source == "files":
    ann = sources.parse_annotations(
        cfg.format, annotations=cfg.train_annotations if split == "train" else cfg.eval_annotations,
        video_dir=cfg.video_dir, labels=cfg.labels, num_classes=cfg.num_classes)
    return sources.VideoFileSource(ann.records)
  raise ValueError(f"data.source={cfg.source!r}: expected 'prepared' or 'files'")


def _finish(ds: grain.MapDataset, cfg, workers: int | None) -> grain.IterDataset:
  it = ds.to_iter_dataset(grain.ReadOptions(num_threads=cfg.threads,
                                            prefetch_buffer_size=max(cfg.prefetch, 1)))
  workers = cfg.workers if workers is None else workers
  if workers > 0:
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers,
                                                     per_worker_buffer_size=cfg.prefetch))
  return it


def train_dataset(cfg, source=None, *, process_index: int | None = None,
                  process_count: int | None = None, workers: int | None = None) -> grain.IterDataset:
  """Infinite (or `num_epochs`) shuffled, augmented per-host train batches."""
  source = make_source(cfg, "train") if source is None else source
  pi = jax.process_index() if process_index is None else process_index
  pc = jax.process_count() if process_count is None else process_count
  reps = cfg.train.num_samples
  if cfg.batch_size % reps:
    raise ValueError(f"data.batch_size={cfg.batch_size} not divisible by train.num_samples={reps}")
  ds = grain.MapDataset.range(len(source)).seed(cfg.seed).shuffle()
  ds = ds.repeat(None if cfg.num_epochs < 0 else cfg.num_epochs)
  ds = ds.random_map(ClipLoader(source, cfg, train=True))[pi::pc]
  ds = ds.batch(cfg.batch_size // reps, drop_remainder=True)
  if reps > 1:
    ds = ds.map(_merge_samples)
  return _finish(ds, cfg, workers)


def eval_dataset(cfg, source=None, *, process_index: int | None = None,
                 process_count: int | None = None, workers: int | None = None) -> grain.IterDataset:
  """One pass over the eval split, every video once (padded with `valid=False`), views grouped."""
  source = make_source(cfg, "eval") if source is None else source
  pi = jax.process_index() if process_index is None else process_index
  pc = jax.process_count() if process_count is None else process_count
  gb = cfg.eval_batch_size * pc
  total = math.ceil(len(source) / gb) * gb
  ds = grain.MapDataset.range(total).seed(cfg.seed)
  ds = ds.random_map(ClipLoader(source, cfg, train=False))[pi::pc]
  ds = ds.batch(cfg.eval_batch_size, drop_remainder=True)
  return _finish(ds, cfg, workers)


def close(iterator) -> None:
  """Stops mp_prefetch workers and frees shared memory (call before exit)."""
  if hasattr(iterator, "close"):
    iterator.close()


def data_sharding(mesh: jax.sharding.Mesh, axes: tuple[str, ...] = ("data",)) -> jax.sharding.NamedSharding:
  """Batch dim sharded over the mesh's data axes, the rest replicated."""
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(axes))


def to_global(batch: dict, sharding: jax.sharding.Sharding) -> dict:
  """Per-host numpy batch → global `jax.Array`s (`make_array_from_process_local_data`)."""
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
                      batch)
