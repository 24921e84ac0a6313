"""Issue 9: the multi-view test protocol, metrics over real videos only, infer.py on checkpoints.

View positions are checked end to end (decoded frames, not the index helpers) against the
official formulas: UniFormerV2 ``decoder.get_seq_frames`` (test clip k of K: round(seg*i) +
int(seg/(K+1)*(k+1)), seg = (n-1)/T) and SlowFast ``uniform_crop`` (left / centre / right,
centre offset ceil((w - s) / 2)).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from flax import nnx

from vidjax import models
from vidjax.data import config as data_config
from vidjax.data import pipeline, sources, synthetic
from vidjax.train import evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _eval_cfg(num_clips: int, num_crops: int, size: int, num_frames: int = 8):
  c = data_config.uniformerv2_data("k400")
  c.update(num_frames=num_frames, crop_size=size, video_short_side=0, workers=0,
           num_classes=4, eval_batch_size=4)
  c.eval.update(num_clips=num_clips, num_crops=num_crops, short_side=size)
  return c


def test_temporal_views_are_the_official_tsn_test_positions(tmp_path):
  n, t, k = 50, 8, 4
  path = str(tmp_path / "ids.mp4")
  synthetic.write_mp4(path, synthetic.frame_id_frames(n, 48, 48), gop=10)
  cfg = _eval_cfg(k, 1, 48, t)
  src = sources.VideoFileSource([sources.VideoRecord(path, 0, "ids")])
  clip = pipeline.ClipLoader(src, cfg, train=False)(0)["clip"]  # [V, T, H, W, 3]
  assert clip.shape[:2] == (k, t)
  seg = (n - 1) / t
  for view in range(k):
    official = [round(seg * i) + int(seg / (k + 1) * (view + 1)) for i in range(t)]
    np.testing.assert_array_equal(synthetic.read_frame_ids(clip[view]), official)


def test_spatial_views_are_slowfast_uniform_crops(tmp_path):
  h, w, s = 48, 96, 48
  x = np.arange(w)
  frame = np.zeros((h, w, 3), np.uint8)
  frame[..., 0] = (x * 255 // (w - 1))[None, :]  # red encodes the column
  path = str(tmp_path / "ramp.mp4")
  synthetic.write_mp4(path, np.repeat(frame[None], 10, axis=0), gop=10, crf=0)
  cfg = _eval_cfg(1, 3, s, 2)
  src = sources.VideoFileSource([sources.VideoRecord(path, 0, "ramp")])
  clip = pipeline.ClipLoader(src, cfg, train=False)(0)["clip"]
  assert clip.shape[0] == 3
  for view, x0 in enumerate((0, math.ceil((w - s) / 2), w - s)):  # left, centre, right
    got = clip[view, 0, h // 2, :, 0].astype(int)
    np.testing.assert_allclose(got, frame[0, x0:x0 + s, 0].astype(int), atol=6)


def test_padding_and_undecodable_videos_never_count(tmp_path):
  d = str(tmp_path)
  lst = synthetic.write_dataset(d, 1, num_classes=4, num_frames=12, height=32, width=32, seed=3)
  records = sources.parse_list_file(lst, d, strict=True).records
  broken = os.path.join(d, "broken.mp4")
  open(broken, "wb").write(b"not a video")
  records = records + [sources.VideoRecord(broken, 1, "broken")]  # 5 videos, batch 4 -> 3 pads
  cfg = _eval_cfg(2, 1, 32)
  src = sources.VideoFileSource(records)
  batches = list(pipeline.eval_dataset(cfg, src, workers=0))
  valid = np.concatenate([b["valid"] for b in batches]).astype(bool)
  failed = np.concatenate([b["failed"] for b in batches]).astype(bool)
  assert len(valid) == 8 and valid.sum() == 4 and failed.sum() == 1
  # Scores that put every padding / failed row on its "label": they must not raise accuracy.
  labels = np.concatenate([b["label"] for b in batches])
  index = np.concatenate([b["index"] for b in batches])
  top5 = np.tile(np.arange(4)[None], (8, 1))
  top5[:, 0] = np.where(valid, (labels + 1) % 4, labels)  # real videos all wrong
  top5[:, 1] = np.where(valid, labels, (labels + 1) % 4)
  out = evaluate.summarize(dict(label=labels, valid=valid, failed=failed, index=index,
                                top5=top5), 4)
  assert out["num_videos"] == 4 and out["top1"] == 0.0 and out["top5"] == 1.0
  assert out["num_failed"] == 1 and [src.describe(i) for i in out["failed_indices"]] == [
      src.describe(4)]
  assert out["confusion"].sum() == 4


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  """A converted-style checkpoint (models.save) whose head prefers class 2, plus its videos."""
  d = str(tmp_path_factory.mktemp("infer"))
  cfg = dict(name="video_focalnet", variant="tiny", depths=(1, 1, 1, 1), embed_dim=8,
             num_classes=4, num_frames=4, image_size=32)
  model = models.create(cfg, rngs=nnx.Rngs(0))
  model.head.bias.set_value(model.head.bias.get_value().at[2].set(20.0))
  out = os.path.join(d, "ckpt")
  models.save(out, model, cfg, {"labels": ["zero", "one", "two", "three"]})
  lst = synthetic.write_dataset(d, 1, num_classes=2, num_frames=12, height=36, width=48, seed=5)
  videos = [os.path.join(d, line.split()[0]) for line in open(lst)]
  return out, videos, d


def _infer(*args):
  return subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "infer.py"), *args],
                        capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_infer_prints_names_and_json_for_a_converted_checkpoint(converted):
  ckpt, videos, _ = converted
  r = _infer("--checkpoint", ckpt, "--video", videos[0], "--top_k", "2")
  assert r.returncode == 0, r.stderr[-2000:]
  last = json.loads(r.stdout.strip().splitlines()[-1])
  assert last["video"] == videos[0] and last["top_k"][0][0] == "two"
  assert last["top_k"][0][1] > 0.99 and len(last["top_k"]) == 2
  pattern = os.path.join(os.path.dirname(os.path.dirname(videos[0])), "*", "*.mp4")
  r = _infer("--checkpoint", ckpt, "--video", pattern)  # one glob, both class folders: one batch
  assert r.returncode == 0, r.stderr[-2000:]
  batch = json.loads(r.stdout.strip().splitlines()[-1])["videos"]
  assert sorted(v["video"] for v in batch) == sorted(videos) and len(videos) == 2
  assert all(v["top_k"][0][0] == "two" for v in batch)


def test_infer_bad_paths_exit_2_naming_the_path(converted):
  ckpt, videos, d = converted
  empty = os.path.join(d, "empty.mp4")
  open(empty, "wb").close()
  junk = os.path.join(d, "junk.mp4")
  open(junk, "wb").write(b"\x00" * 1000)
  for bad in (os.path.join(d, "missing.mp4"), d, empty, junk):
    r = _infer("--checkpoint", ckpt, "--video", bad)
    assert r.returncode == 2, (bad, r.stderr[-1000:])
    lines = [line for line in r.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and bad in lines[0], r.stderr[-1000:]


def test_evaluate_a_converted_checkpoint_takes_its_class_count(converted, tmp_path):
  """A released config (400 classes) evaluates a converted 4-class checkpoint: the head decides."""
  import importlib.util
  ckpt, _, d = converted
  spec = importlib.util.spec_from_file_location(
      "vfn_k400_tiny", os.path.join(ROOT, "configs", "video_focalnet", "k400_tiny.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)

  def eval_config():  # the released config reading the two test videos
    config = module.get_config()
    config.data.update(source="files", format="list", video_dir=d, workers=0, num_frames=4,
                       crop_size=32, video_short_side=0, eval_batch_size=-1,
                       eval_annotations=os.path.join(d, "train.txt"))
    config.data.eval.update(num_clips=2, num_crops=1, short_side=32)
    return config

  config = eval_config()
  assert config.model.num_classes == 400
  config.model.update(depths=(1, 1, 1, 1), embed_dim=8, num_frames=4, image_size=32)
  notes = []
  out = evaluate.evaluate_checkpoint(config, ckpt, out=str(tmp_path), log=notes.append)
  assert any("model.num_classes=400 -> 4" in n for n in notes), notes
  # The head prefers class 2; the two videos are classes 0 and 1.
  assert out["num_videos"] == 2 and out["top1"] == 0.0 and out["views_per_video"] == 2
  saved = json.load(open(tmp_path / "eval_val.json"))
  assert saved["classes"] == ["zero", "one", "two", "three"]
  assert np.asarray(saved["confusion"])[:, 2].sum() == 2
  # The architecture is the checkpoint's too: the released config as is (T: depths 2-2-6-2,
  # width 96) evaluates it; execution switches (dtype) stay the config's.
  config = eval_config()
  config.model.dtype = "bfloat16"
  notes = []
  again = evaluate.evaluate_checkpoint(config, ckpt, out=str(tmp_path), log=notes.append)
  for field in ("depths=(2, 2, 6, 2) -> (1, 1, 1, 1)", "embed_dim=96 -> 8", "num_frames=8 -> 4",
                "num_classes=400 -> 4"):
    assert any(f"model.{field} (from {ckpt})" in n for n in notes), (field, notes)
  assert not any("dtype" in n for n in notes)
  assert again["top1"] == out["top1"] and again["num_videos"] == 2


def test_demo_quick_runs_end_to_end(tmp_path):
  """The demo's smallest setting: data, 4 training runs, evaluation, infer.py, demo.png, JSON.
  No accuracy claim here (3 steps); the accuracy claim is the full demo itself."""
  r = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "demo.py"),
                      f"--workdir={tmp_path}", "--quick"], capture_output=True, text=True,
                     cwd=ROOT, timeout=900)
  assert r.returncode == 0, r.stderr[-3000:]
  out = json.loads(r.stdout.strip().splitlines()[-1])
  for name in ("uniformerv2", "video_focalnet"):
    assert 0.0 <= out[name]["top1"] <= 1.0 and 0.0 <= out[name]["ablation_top1"] <= 1.0
    assert os.path.isdir(tmp_path / name / "checkpoints")
  assert out["infer"]["video"].endswith(".mp4") and len(out["infer"]["top_k"]) == 3
  assert out["wall_s"] > 0
  assert open(tmp_path / "demo.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
