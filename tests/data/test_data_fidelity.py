"""Recipe fidelity of the host augmentation (issue 14): Video-FocalNet jitter/gray coin semantics
over many clips, UniFormerV2's RandAugment fill through the whole train clip path."""

import numpy as np
import pytest
from scipy import stats

from vidjax.data import config, pipeline, transforms

N_CLIPS, T = 1200, 8
P_MIN = 1e-3


def _frame(h=6, w=6):
  yy, xx = np.mgrid[0:h, 0:w]
  return np.stack([40 + 30 * xx, 60 + 20 * yy, 90 + 10 * (xx + yy)], -1).astype(np.uint8)


def _run_clips(mode: str, monkeypatch, n: int = N_CLIPS):
  """Per clip: (jitter parameter draws, gray frames, brightness factors) over `n` clips."""
  draws = []
  real = transforms.sample_color_jitter

  def spy(rng, *a):
    p = real(rng, *a)
    draws.append(p)
    return p
  monkeypatch.setattr(transforms, "sample_color_jitter", spy)
  clip = transforms.to_pil(np.repeat(_frame()[None], T, 0))
  rng = np.random.default_rng(0)
  out = []
  for _ in range(n):
    start = len(draws)
    res = transforms.to_numpy(transforms.jitter_and_gray(rng, clip, 0.8, (0.4, 0.4, 0.2, 0.1),
                                                         0.2, mode))
    gray = int(sum((f[..., 0] == f[..., 1]).all() and (f[..., 1] == f[..., 2]).all() for f in res))
    out.append((len(draws) - start, gray, [d[1] for d in draws[start:]]))
  return out


def test_released_jitter_is_one_coin_per_clip_and_factors_per_frame(monkeypatch):
  # Video-FocalNets datasets/pipeline.py: `ColorJitter.__call__` tosses random() < 0.8 once per
  # clip and then calls torchvision ColorJitter (new get_params) on every frame; `GrayScale`
  # tosses random() < 0.2 once per clip.
  assert config.video_focalnet_data().train.jitter_mode == "released"
  clips = _run_clips("released", monkeypatch)
  n_draws = np.array([c[0] for c in clips])
  n_gray = np.array([c[1] for c in clips])
  assert set(n_draws) == {0, T} and set(n_gray) == {0, T}  # never part of a clip
  jit, gray = n_draws == T, n_gray == T
  for k, p in ((jit.sum(), 0.8), (gray.sum(), 0.2)):  # two-sided binomial tests
    assert stats.binomtest(int(k), N_CLIPS, p).pvalue > P_MIN, (k, p)
  table = np.array([[(jit & gray).sum(), (jit & ~gray).sum()],
                    [(~jit & gray).sum(), (~jit & ~gray).sum()]])
  assert stats.chi2_contingency(table).pvalue > P_MIN, table  # the two coins are independent
  # Factors are drawn per frame: 8 distinct brightness factors in each jittered clip, and pooled
  # they are U(0.6, 1.4) (torchvision's range for brightness=0.4).
  bright = [c[2] for c in clips if c[0] == T]
  assert all(len(set(b)) == T for b in bright)
  pooled = np.concatenate(bright)
  assert stats.kstest(pooled, stats.uniform(0.6, 0.8).cdf).pvalue > P_MIN
  # Frames of one clip are independent draws: lag-1 correlation of the factors within clips ~ 0.
  b = np.array(bright)
  r = np.corrcoef(b[:, :-1].ravel(), b[:, 1:].ravel())[0, 1]
  assert abs(r) < 4 / np.sqrt(b[:, 1:].size), r


def test_per_frame_mode_is_distinguishable_from_released(monkeypatch):
  # The old default tossed both coins per frame: partly jittered, partly gray clips. The check
  # above would fail on it.
  clips = _run_clips("per_frame", monkeypatch, n=200)
  assert len({c[0] for c in clips} - {0, T}) > 0 and len({c[1] for c in clips} - {0, T}) > 0
  assert np.mean([c[1] for c in clips]) == pytest.approx(0.2 * T, abs=0.3)


@pytest.mark.parametrize("mode", ["fused", "exact"])
def test_uniformerv2_train_clip_fills_with_128(mode, monkeypatch):
  # UniFormerV2 (slowfast/datasets/transform.py `create_random_augment`) passes timm no
  # `img_mean`, so the geometric ops fill with timm's _FILL = 128 (not the mean 0.45·255 ≈ 115).
  cfg = config.uniformerv2_data(crop_size=32, num_frames=2)
  cfg.train.randaug_mode, cfg.train.flip_prob, cfg.train.scale = mode, 0.0, (1.0, 1.0)
  cfg.train.ratio = (1.0, 1.0)
  monkeypatch.setattr(transforms, "sample_rand_augment",
                      lambda rng, **kw: [("TranslateXRel", 0.45)])
  loader = pipeline.ClipLoader(None, cfg, train=True)
  frames = np.zeros((4, 32, 32, 3), np.uint8)
  clip = loader._train_clip(4, lambda idx, size=None: frames[np.asarray(idx)], (32, 32),
                            np.random.default_rng(0))
  assert (clip[:, :, -12:] == 128).all() and (clip[:, :, :12] == 0).all()
