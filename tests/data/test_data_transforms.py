"""Augmentation invariants: crop boxes and shapes, one parameter set per clip, flips, crops."""

import numpy as np
import pytest

from vidjax.data import config, pipeline, transforms


def _smooth(h=256, w=320, t=1):
  yy, xx = np.mgrid[0:h, 0:w]
  f = np.stack([(xx * 0.7) % 256, (yy * 0.9) % 256, ((xx + yy) * 0.4) % 256], -1).astype(np.uint8)
  return np.repeat(f[None], t, 0)


def test_rrc_box_statistics():
  rng = np.random.default_rng(0)
  boxes = np.array([transforms.sample_rrc(rng, 256, 320) for _ in range(3000)])
  y, x, h, w = boxes.T
  assert (y >= 0).all() and (x >= 0).all() and (y + h <= 256).all() and (x + w <= 320).all()
  area = h * w / (256 * 320)
  assert area.min() >= 0.079 and area.max() <= 1.0
  aspect = w / h
  assert aspect.min() > 0.74 and aspect.max() < 1.35
  # log-uniform aspect: the median aspect is ~1 (geometric mean of 3/4 and 4/3).
  assert abs(np.median(np.log(aspect))) < 0.05


def test_uniform_crop_boxes():
  assert transforms.uniform_crop_boxes(224, 298, 224, 3) == [(0, 0, 224, 224), (0, 37, 224, 224), (0, 74, 224, 224)]
  assert transforms.uniform_crop_boxes(300, 224, 224, 3) == [(0, 0, 224, 224), (38, 0, 224, 224), (76, 0, 224, 224)]
  assert transforms.uniform_crop_boxes(224, 298, 224, 1) == [(0, 37, 224, 224)]


def test_parse_rand_augment():
  assert transforms.parse_rand_augment("rand-m7-n4-mstd0.5-inc1") == dict(
      magnitude=7.0, num_ops=4, magnitude_std=0.5, increasing=True, prob=0.5)


def test_randaug_op_args_follow_timm_levels():
  assert transforms._op_arg("Rotate", 10.0, False) == 30.0
  assert transforms._op_arg("Rotate", 5.0, True) == -15.0
  assert transforms._op_arg("PosterizeIncreasing", 7.0, False) == 4 - int(0.7 * 4)
  assert transforms._op_arg("SolarizeIncreasing", 7.0, False) == 256 - int(0.7 * 256)
  assert transforms._op_arg("ContrastIncreasing", 10.0, True) == pytest.approx(0.1)
  rng = np.random.default_rng(0)
  ops = [transforms.sample_rand_augment(rng) for _ in range(2000)]
  counts = [len(o) for o in ops]
  assert abs(np.mean(counts) - 2.0) < 0.1  # 4 ops, each applied w.p. 0.5


def test_fused_warp_matches_sequential_ops():
  # On an image that is linear between wrap seams, bilinear resampling is exact, so the one-warp
  # composition must reproduce op-by-op PIL transforms + crop up to seam pixels.
  ims = transforms.to_pil(_smooth())
  box = (30, 40, 180, 200)
  for ops in ([("Rotate", 12.0)], [("ShearX", 0.2), ("TranslateYRel", -0.1)],
              [("Rotate", -20.0), ("ShearY", 0.1), ("TranslateXRel", 0.2)]):
    seq = transforms.to_numpy(transforms.resized_crop(
        transforms.rand_augment(ims, ops, interpolation="bilinear"), box, (224, 224)))
    fused = transforms.to_numpy(transforms.fused_warp(ims, ops, (256, 320), box, (224, 224)))
    diff = np.abs(seq.astype(float) - fused)
    print(ops, "mean |Δ|", diff.mean())
    assert np.median(diff) == 0 and diff.mean() < 1.0


@pytest.mark.parametrize("recipe", ["uniformerv2", "video_focalnet"])
def test_train_clip_same_params_for_every_frame(recipe):
  fn = config.uniformerv2_data if recipe == "uniformerv2" else config.video_focalnet_data
  cfg = fn(crop_size=64)
  cfg.train.jitter_mode = "per_clip"  # one jitter draw per clip so identical frames stay identical
  loader = pipeline.ClipLoader(None, cfg, train=True)
  frames = _smooth(96, 128, 8)
  get = lambda idx, size=None: frames[np.asarray(idx) % 8]
  outs = []
  for seed in range(12):
    clip = loader._train_clip(40, get, (96, 128), np.random.default_rng(seed))
    assert clip.shape == (8, 64, 64, 3) and clip.dtype == np.uint8
    assert (clip == clip[:1]).all()  # every frame got the same crop, flip and ops
    outs.append(clip[0])
  assert len({o.tobytes() for o in outs}) == 12  # but clips differ


def test_per_frame_jitter_differs_across_frames():
  cfg = config.video_focalnet_data(crop_size=32)
  cfg.train.color_jitter_prob, cfg.train.grayscale_prob = 1.0, 0.0
  loader = pipeline.ClipLoader(None, cfg, train=True)
  frames = _smooth(48, 64, 8)
  clip = loader._train_clip(8, lambda idx, size=None: frames[np.asarray(idx)], (48, 64),
                            np.random.default_rng(0))
  assert len({f.tobytes() for f in clip}) == 8


def test_flip_and_crop_geometry():
  cfg = config.uniformerv2_data(crop_size=32)
  cfg.train.rand_augment = ""
  cfg.train.scale = (1.0, 1.0)
  cfg.train.ratio = (1.0, 1.0)
  loader = pipeline.ClipLoader(None, cfg, train=True)
  frames = np.zeros((4, 32, 32, 3), np.uint8)
  frames[:, :, :8] = 255  # bright left band
  get = lambda idx, size=None: frames[np.asarray(idx)]
  flips = set()
  for seed in range(20):
    clip = loader._train_clip(4, get, (32, 32), np.random.default_rng(seed))
    left, right = clip[:, :, :8].mean(), clip[:, :, -8:].mean()
    assert {left, right} == {0.0, 255.0}  # full-frame crop, exact, possibly mirrored
    flips.add(right == 255.0)
  assert flips == {True, False}
  cfg.train.flip_prob = 0.0
  loader = pipeline.ClipLoader(None, cfg, train=True)
  for seed in range(10):
    assert loader._train_clip(4, get, (32, 32), np.random.default_rng(seed))[:, :, :8].mean() == 255


def test_eval_views_three_crops():
  cfg = config.uniformerv2_data(crop_size=32, num_frames=2)
  cfg.eval.short_side, cfg.eval.num_clips, cfg.eval.num_crops = 32, 2, 3
  loader = pipeline.ClipLoader(None, cfg, train=False)
  frame = np.zeros((32, 64, 3), np.uint8)
  frame[:, :, 0] = np.arange(64)[None, :]  # red channel = column index
  frames = np.repeat(frame[None], 10, 0)
  views = loader._eval_views(10, lambda idx, size=None: frames[np.asarray(idx)], (32, 64))
  assert views.shape == (6, 2, 32, 32, 3)
  np.testing.assert_array_equal(views[:3, 0, 0, 0, 0], [0, 16, 32])  # left, centre, right


def test_released_jitter_coins_are_per_clip_and_factors_per_frame():
  # Video-FocalNets datasets/pipeline.py: one p=.8 ColorJitter coin and one p=.2 GrayScale coin
  # per clip; a jittered clip calls torchvision ColorJitter (new factors) on every frame.
  cfg = config.video_focalnet_data(crop_size=16)
  assert cfg.train.jitter_mode == "released"
  loader = pipeline.ClipLoader(None, cfg, train=True)
  frames = _smooth(24, 32, 8)
  get = lambda idx, size=None: frames[np.zeros(len(idx), int)]  # 8 copies of one frame
  jittered = grayed = 0
  for seed in range(150):
    clip = loader._train_clip(8, get, (24, 32), np.random.default_rng(seed))
    gray = [(f[..., 0] == f[..., 1]).all() and (f[..., 1] == f[..., 2]).all() for f in clip]
    distinct = len({f.tobytes() for f in clip})
    assert sum(gray) in (0, 8) and distinct in (1, 8), (seed, sum(gray), distinct)
    jittered += distinct == 8
    grayed += gray[0]
  assert abs(jittered / 150 - 0.8) < 0.1 and abs(grayed / 150 - 0.2) < 0.1, (jittered, grayed)


def test_bad_jitter_mode_is_one_clear_error():
  cfg = config.video_focalnet_data()
  cfg.train.jitter_mode = "per-frame"
  with pytest.raises(ValueError, match=r"data.train.jitter_mode='per-frame': expected one of"):
    pipeline.ClipLoader(None, cfg, train=True)


def test_randaug_fill_is_timms_128():
  # UniFormerV2's create_random_augment passes timm no img_mean, so the fill is timm's _FILL.
  black = transforms.to_pil(np.zeros((1, 40, 40, 3), np.uint8))
  shifted = transforms.to_numpy(transforms.rand_augment(black, [("TranslateXRel", 0.45)]))
  assert (shifted[0, :, -10:] == 128).all() and (shifted[0, :, :10] == 0).all()
  warped = transforms.to_numpy(transforms.fused_warp(black, [("TranslateXRel", 0.45)], (40, 40),
                                                     (0, 0, 40, 40), (40, 40)))
  assert (warped[0, :, -10:] == 128).all()


def test_posterize_to_zero_bits_gives_black():
  # PosterizeIncreasing at magnitude 10 keeps 0 bits: black under the Pillow the recipes used
  # (LUT i & ~255); current Pillow's ImageOps.posterize(img, 0) raises instead.
  im = transforms.to_pil(_smooth(8, 8))
  arg = transforms._op_arg("PosterizeIncreasing", 10.0, False)
  assert arg == 0
  assert (transforms.to_numpy(transforms.rand_augment(im, [("PosterizeIncreasing", arg)])) == 0).all()
