"""Issue 13: maps of what the networks look at (``vidjax.viz``, ``experiments/visualize.py``).

The models' ``capture`` / ``token_delta`` switches leave the logits bit-identical; the CAM's
gradient is the derivative of the real logits; maps are finite, ``[T, H, W]``, in [0, 1]; the
temporal modulator depends on the frame order while the first spatial one does not; the CLI
writes a readable PNG and GIF and rejects bad input with exit code 2. The CAM-on-polygon ratio
needs a trained model: ``test_cam_peaks_on_the_moving_polygon`` runs when one is given.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image, ImageDraw

from vidjax import models, viz
from vidjax.data import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "experiments", "visualize.py")
# The released designs at toy size: UniFormerV2 Sth-Sth (local MHRA, temporal downsampling,
# 2 global blocks), Video-FocalNet spatio-temporal.
UNIFORMER = dict(name="uniformerv2", width=32, layers=3, heads=2, n_head=2, patch_size=8,
                 return_list=(1, 2), n_layers=2, no_lmhra=False, temporal_downsample=True,
                 num_classes=4, num_frames=4, image_size=32)
FOCALNET = dict(name="video_focalnet", variant="tiny", depths=(1, 1, 1, 1), embed_dim=8,
                num_classes=4, num_frames=4, image_size=32)
NAMES = ["zero", "one", "two", "three"]


@pytest.fixture(scope="module")
def visualize():
  """experiments/visualize.py, loaded once (it defines global absl flags)."""
  spec = importlib.util.spec_from_file_location("visualize", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _model(cfg: dict) -> nnx.Module:
  """A random model whose zero-initialised weights (UniFormerV2's global blocks and query, which
  make them the identity at init) are random too, so every map depends on its input."""
  model = models.create(cfg, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(1)
  for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param)):
    x = np.asarray(v.get_value())
    if not x.any():
      v.set_value(jnp.asarray(0.3 * rng.standard_normal(x.shape), x.dtype))
  model.eval()
  return model


@pytest.fixture(scope="module")
def uniformer():
  return _model(UNIFORMER)


@pytest.fixture(scope="module")
def focalnet():
  return _model(FOCALNET)


def _clip(seed: int = 0) -> jax.Array:
  return jax.random.normal(jax.random.key(seed), (1, 4, 32, 32, 3), jnp.float32)


def _forward(model, **kw):
  graphdef, state = nnx.split(model)
  return jax.jit(lambda s, x: nnx.merge(graphdef, s)(x, **kw))


def test_capture_and_token_delta_leave_uniformerv2_logits_bit_identical(uniformer):
  x, state = _clip(), nnx.state(uniformer)
  plain = np.asarray(_forward(uniformer)(state, x))
  captured, extra = _forward(uniformer, capture=True)(state, x)
  zeros = jnp.zeros(uniformer.token_shape(1), jnp.float32)
  delta = _forward(uniformer, token_delta=zeros)(state, x)
  np.testing.assert_array_equal(np.asarray(captured), plain)
  np.testing.assert_array_equal(np.asarray(delta), plain)
  assert extra["tokens"].shape == (1, 2, 4, 4, 32)  # [B, T', h, w, C]
  assert [a.shape for a in extra["attention"]] == [(1, 2, 1, 2 * 17)] * 2
  np.testing.assert_allclose(np.asarray(extra["attention"][0]).sum(-1), 1.0, rtol=1e-5)


def test_capture_leaves_video_focalnet_logits_bit_identical(focalnet):
  x, state = _clip(), nnx.state(focalnet)
  plain = np.asarray(_forward(focalnet)(state, x))
  captured, extra = _forward(focalnet, capture=True)(state, x)
  np.testing.assert_array_equal(np.asarray(captured), plain)
  assert sorted(extra) == [f"layers.{i}" for i in range(4)]
  assert extra["layers.0"]["spatial"].shape == extra["layers.0"]["temporal"].shape == (
      1, 4, 8, 8, 8)
  assert extra["layers.3"]["temporal"].shape == (1, 4, 1, 1, 64)


def test_grad_cam_gradient_is_the_derivative_of_the_real_logits(uniformer):
  """<d logit_k / d tokens, u> equals the central difference of the plain forward along u."""
  x, k = _clip(), 2
  graphdef, state = nnx.split(uniformer)
  logit = jax.jit(lambda d: nnx.merge(graphdef, state)(x, token_delta=d)[0, k])
  zeros = jnp.zeros(uniformer.token_shape(1), jnp.float32)
  u = jax.random.normal(jax.random.key(3), zeros.shape)
  eps = 1e-2
  numeric = float(logit(eps * u) - logit(-eps * u)) / (2 * eps)
  analytic = float(jnp.vdot(jax.grad(logit)(zeros), u))
  assert abs(analytic) > 1e-2
  assert abs(numeric - analytic) <= 2e-2 * abs(analytic)


def test_maps_are_finite_unit_range_and_clip_shaped(uniformer, focalnet):
  x = _clip()
  expected = {"cam": ["CAM"], "attention": ["dec[0]", "dec[1]", "mean"],
              "modulators": [f"layers.{i} {k}" for i in range(4) for k in ("spatial",
                                                                             "temporal")]}
  for model, kind in ((uniformer, "cam"), (uniformer, "attention"), (focalnet, "modulators")):
    maps = viz.compute(model, x, kind)
    assert list(maps.rows) == expected[kind]
    for name, m in maps.rows.items():
      assert m.shape == (4, 32, 32), (kind, name)
      assert np.isfinite(m).all() and m.min() >= 0.0 and m.max() <= 1.0 + 1e-6, (kind, name)
      assert m.max() - m.min() > 0.3, (kind, name)  # not a constant map
    np.testing.assert_allclose(maps.probs.sum(), 1.0, rtol=1e-5)
  # The CAM follows the requested class; by default it is the predicted one.
  cams = [viz.compute(uniformer, x, "cam", k).rows["CAM"] for k in range(2)]
  assert np.abs(cams[0] - cams[1]).max() > 0.1
  default = viz.compute(uniformer, x, "cam")
  assert default.class_index == int(np.argmax(default.probs))
  with pytest.raises(ValueError, match="'modulators' is not available for uniformerv2"):
    viz.compute(uniformer, x, "modulators")


def test_temporal_modulator_depends_on_frame_order_spatial_does_not(focalnet):
  x, perm = _clip(), np.array([2, 0, 3, 1])
  a = viz.compute(focalnet, x, "modulators").rows
  b = viz.compute(focalnet, x[:, perm], "modulators").rows
  # Stage 0's spatial modulator sees one frame at a time: shuffling only permutes its maps.
  np.testing.assert_allclose(b["layers.0 spatial"], a["layers.0 spatial"][perm], atol=1e-5)
  for stage in range(4):
    diff = np.abs(b[f"layers.{stage} temporal"] - a[f"layers.{stage} temporal"][perm]).max()
    assert diff > 0.05, (stage, diff)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, uniformer):
  d = str(tmp_path_factory.mktemp("viz"))
  models.save(os.path.join(d, "ckpt"), uniformer, UNIFORMER, {"labels": NAMES})
  video = os.path.join(d, "clip.mp4")
  synthetic.write_mp4(video, synthetic.motion_frames(0, np.random.default_rng(0), 12, 36, 48))
  return os.path.join(d, "ckpt"), video, d


def _cli(*args):
  return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                        cwd=ROOT, timeout=600)


def test_cli_writes_a_readable_png_and_gif(checkpoint):
  ckpt, video, d = checkpoint
  out = os.path.join(d, "out")
  r = _cli("--checkpoint", ckpt, "--video", video, "--out", out, "--kind", "cam",
           "--class", "three")
  assert r.returncode == 0, r.stderr[-3000:]
  result = json.loads(r.stdout.strip().splitlines()[-1])
  assert result["kind"] == "cam" and result["class"] == "three"
  assert 0.0 < result["probability"] < 1.0
  png, gif = result["files"]
  assert png == os.path.join(out, "clip_cam.png") and gif == os.path.join(out, "clip_cam.gif")
  with Image.open(png) as im:
    im.load()
    assert im.format == "PNG" and im.size[0] > 300
  with Image.open(gif) as im:
    assert im.format == "GIF" and im.n_frames == 4  # one per sampled frame
    frames = []
    for i in range(im.n_frames):
      im.seek(i)
      frames.append(np.asarray(im.convert("RGB"), np.float32))
  assert np.abs(frames[0] - frames[-1]).mean() > 1.0  # the frames differ


def test_bad_arguments_are_one_line_and_exit_2(checkpoint, visualize):
  ckpt, video, d = checkpoint
  missing = os.path.join(d, "missing.mp4")
  r = _cli("--checkpoint", ckpt, "--video", missing, "--out", d)
  assert r.returncode == 2 and r.stderr.strip() == f"error: --video {missing}: no such file"
  r = _cli("--checkpoint", os.path.join(d, "nope"), "--video", video, "--out", d)
  assert r.returncode == 2 and "--checkpoint" in r.stderr and "nope" in r.stderr
  r = _cli("--checkpoint", ckpt, "--video", video)
  assert r.returncode == 2 and r.stderr.strip() == ("error: flag --out=None: Flag --out must "
                                                    "have a value other than None.")
  with pytest.raises(visualize.InputError, match=r"--class 'seven': not a class of .* \(4 classes: "
                     r"zero, one, two, three\)"):
    visualize.visualizer(ckpt, "cam", "seven")
  with pytest.raises(visualize.InputError, match=r"--kind modulators: not available for uniformerv2 "
                     r"\(expected one of cam, attention\)"):
    visualize.visualizer(ckpt, "modulators")


def _polygon_clip(label: int, seed: int, num_frames: int, height: int, width: int,
                  motions=synthetic.MOTIONS):
  """``synthetic.motion_frames`` and the moving polygon's mask, drawn again from the points the
  generator drew it with (distractors and background excluded)."""
  calls, draw = [], ImageDraw.ImageDraw.polygon

  def record(self, xy, *args, **kwargs):
    calls.append(list(xy))
    return draw(self, xy, *args, **kwargs)

  with mock.patch.object(ImageDraw.ImageDraw, "polygon", record):
    frames = synthetic.motion_frames(label, np.random.default_rng(seed), num_frames, height,
                                     width, motions)
  assert len(calls) == 9 * num_frames  # the shape and its 8 wrapped copies per frame
  mask = np.zeros(frames.shape, np.uint8)
  for t in range(num_frames):
    img = Image.new("L", (width, height))
    for xy in calls[9 * t:9 * t + 9]:
      draw(ImageDraw.Draw(img), xy, fill=255)
    mask[t] = np.asarray(img)[..., None]
  return frames, mask


@pytest.mark.skipif(not os.environ.get("VIDJAX_DEMO_UNIFORMERV2"),
                    reason="needs a trained demo UniFormerV2 workdir in $VIDJAX_DEMO_UNIFORMERV2")
def test_cam_peaks_on_the_moving_polygon(tmp_path, visualize):
  """Mean CAM inside the polygon >= 2x outside it, pooled over 16 held-out synthetic videos.

  Run with ``VIDJAX_DEMO_UNIFORMERV2=WORKDIR`` after ``python experiments/train.py --config
  configs/demo/uniformerv2.py:DATA --workdir WORKDIR`` (or ``experiments/demo.py``). The mask
  goes through the same decoding and view as the clip (written as a lossless mp4 of its own).
  """
  from vidjax.configs import demo
  v = visualize.visualizer(os.environ["VIDJAX_DEMO_UNIFORMERV2"], "cam")
  inside, outside = [], []
  for i in range(16):
    frames, mask = _polygon_clip(i % demo.NUM_CLASSES, 10_000 + i, demo.VIDEO_FRAMES,
                                 demo.VIDEO_SIZE, demo.VIDEO_SIZE, synthetic.HORIZONTAL)
    paths = [str(tmp_path / f"{name}{i}.mp4") for name in ("clip", "mask")]
    synthetic.write_mp4(paths[0], frames)
    synthetic.write_mp4(paths[1], mask, crf=0)
    m = visualize.decode_clip(v.config, paths[1])[..., 0] > 127
    cam = visualize.maps_of(v, visualize.decode_clip(v.config, paths[0])).rows["CAM"]
    inside.append(cam[m].mean())
    outside.append(cam[~m].mean())
  ratio = np.mean(inside) / np.mean(outside)
  print(f"CAM inside / outside the polygon: {ratio:.2f} (per video: "
        f"{[round(float(a / b), 2) for a, b in zip(inside, outside)]})")
  assert ratio >= 2.0
