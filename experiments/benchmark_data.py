"""Input-pipeline throughput: clips/s per core and in total, prepared JPEG frames vs mp4 files.

Generates realistic synthetic videos (320×256, 10 s at 25 fps, long GOP 250 and short GOP 25),
prepares them as JPEG frames (tfds ArrayRecord), then measures:
  * per core: the decode+sample+augment function (`ClipLoader`) in this one process, as clips per
    CPU-second of the process (so other load on a shared machine does not distort it);
  * total: the full grain pipeline with `--workers` mp_prefetch processes;
for 8×224 and 16×224 training clips (UniFormerV2 recipe: RandAugment m7-n4 → RRC → flip, and the
Video-FocalNet recipe: RRC → flip → per-frame jitter/gray), 4 clips × 3 crops evaluation, and the
plain baseline (decode every frame with PyAV, then sample, same augmentation). Last line: JSON.

  python experiments/benchmark_data.py [--workers 2] [--seconds 6] [--num_videos 12]
"""

from __future__ import annotations

import argparse
import json
import os
import importlib.util
import tempfile
import time
from pathlib import Path


import numpy as np

from vidjax.data import config, decode, pipeline, sources, synthetic


class BaselineLoader(pipeline.ClipLoader):
  """Decode every frame with PyAV, then sample: the plain approach (no seeking, no index)."""

  def _frames_source(self, rec):
    allf = decode.decode_video(rec["path"], None, threads=self.cfg["video_threads"])
    h, w = allf.shape[1:3]

    def get(idx, size=None):
      return allf[np.asarray(idx)]
    return len(allf), get, (h, w)


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


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
  p.add_argument("--seconds", type=float, default=5.0, help="timing window per measurement")
  p.add_argument("--num_videos", type=int, default=8, help="per GOP setting")
  p.add_argument("--dir", default="", help="reuse/keep data here (default: a temp dir)")
  a = p.parse_args(argv)
  root = a.dir or tempfile.mkdtemp(prefix="vidjax_bench_")
  lists = {}
  for gop in (250, 25):
    d = os.path.join(root, f"gop{gop}")
    lst = os.path.join(d, "train.txt")
    if not os.path.exists(lst):
      t = time.time()
      synthetic.write_dataset(d, max(1, a.num_videos // 4), num_classes=4, num_frames=250,
                              height=256, width=320, fps=25, gop=gop)
      print(f"wrote {a.num_videos} videos 320x256x250 GOP {gop} in {time.time() - t:.1f}s")
    lists[gop] = lst
  prep = os.path.join(root, "prepared")
  if not os.path.exists(os.path.join(prep, "dataset_info.json")):
    spec = importlib.util.spec_from_file_location(
        "prepare_data", Path(__file__).resolve().parent / "prepare_data.py")
    prepare_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare_data)
    t = time.time()
    prepare_data.prepare(prepare_data.parser().parse_args(
        ["--annotations", lists[25], "--video_dir", os.path.dirname(lists[25]), "--labels",
         os.path.join(os.path.dirname(lists[25]), "classes.txt"), "--out", prep, "--num_shards", "2",
         "--workers", str(a.workers), "--fps", "25", "--short_side", "256"]))
    print(f"prepared JPEG frames in {time.time() - t:.1f}s")
  src_prep = sources.PreparedSource(prep, "train")
  src_mp4 = {g: sources.VideoFileSource(sources.parse_list_file(l, os.path.dirname(l)).records)
             for g, l in lists.items()}
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

  s = a.seconds
  for frames in (8, 16):
    c = cfg_for("uniformerv2", frames)
    report(f"prepared uniformerv2 {frames}x224", per_core(pipeline.ClipLoader(src_prep, c, True), n_rec, s))
    for gop in (250, 25):
      report(f"mp4 gop{gop} uniformerv2 {frames}x224",
             per_core(pipeline.ClipLoader(src_mp4[gop], c, True), n_rec, s))
    if frames == 8:
      ca = cfg_for("uniformerv2", frames)
      ca.train.randaug_mode = "exact"
      report("prepared uniformerv2 8x224 randaug-exact (released order)", per_core(pipeline.ClipLoader(src_prep, ca, True), n_rec, s))
      cf = cfg_for("video_focalnet", frames)
      report("prepared video-focalnet 8x224", per_core(pipeline.ClipLoader(src_prep, cf, True), n_rec, s))
      report("mp4 gop250 video-focalnet 8x224", per_core(pipeline.ClipLoader(src_mp4[250], cf, True), n_rec, s))
      for gop in (250, 25):
        report(f"baseline decode-all gop{gop} uniformerv2 8x224",
               per_core(BaselineLoader(src_mp4[gop], c, True), n_rec, s))
  ce = cfg_for("uniformerv2", 8)
  report("prepared eval 8x224 4x3 views", per_core(pipeline.ClipLoader(src_prep, ce, False), n_rec, s, 12), "views/s/core")
  report("mp4 gop25 eval 8x224 4x3 views", per_core(pipeline.ClipLoader(src_mp4[25], ce, False), n_rec, s, 12), "views/s/core")
  report("mp4 gop250 eval 8x224 4x3 views", per_core(pipeline.ClipLoader(src_mp4[250], ce, False), n_rec, s, 12), "views/s/core")
  # Whole grain pipeline with worker processes (total, all cores).
  c = cfg_for("uniformerv2", 8, batch_size=8)
  report(f"TOTAL prepared uniformerv2 8x224, {a.workers} workers",
         total(lambda: pipeline.train_dataset(c, src_prep, workers=a.workers), s, 8), "clips/s")
  report(f"TOTAL mp4 gop250 uniformerv2 8x224, {a.workers} workers",
         total(lambda: pipeline.train_dataset(c, src_mp4[250], workers=a.workers), s, 8), "clips/s")
  base = res["baseline decode-all gop250 uniformerv2 8x224"]
  summary = {
      "train_clips_per_s_per_core": res["prepared uniformerv2 8x224"],
      "train_clips_per_s_per_core_mp4": res["mp4 gop250 uniformerv2 8x224"],
      "train_clips_per_s_per_core_mp4_short_gop": res["mp4 gop25 uniformerv2 8x224"],
      "baseline_clips_per_s_per_core": base,
      "speedup_prepared_vs_baseline": round(res["prepared uniformerv2 8x224"] / base, 2),
      "speedup_mp4_vs_baseline": round(res["mp4 gop250 uniformerv2 8x224"] / base, 2),
      "train_clips_per_s_total": res[f"TOTAL prepared uniformerv2 8x224, {a.workers} workers"],
      "workers": a.workers, "cpu_count": os.cpu_count(), "results": res}
  print(json.dumps(summary))


if __name__ == "__main__":
  main()
