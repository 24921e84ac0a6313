"""On-device normalisation, label smoothing and mixup/cutmix (one λ per batch, same box per frame)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vidjax.data import config, mixing


def test_normalize_values():
  x = jnp.array([[0, 255, 115]], jnp.uint8)[..., None].repeat(3, -1)  # [1, 3, 3]
  y = mixing.normalize(x, (0.45,) * 3, (0.225,) * 3)
  np.testing.assert_allclose(np.asarray(y[0, :, 0]), [-2.0, (1 - 0.45) / 0.225, (115 / 255 - 0.45) / 0.225], atol=1e-5)


def test_label_smoothing():
  t = mixing.smooth_one_hot(jnp.array([2]), 4, 0.1)
  np.testing.assert_allclose(np.asarray(t[0]), [0.025, 0.025, 0.925, 0.025], atol=1e-7)


def _batch(b=6, t=3, h=16, w=20):
  # Each clip constant = its index, so every output pixel reveals which clip it came from.
  clips = jnp.broadcast_to(jnp.arange(b, dtype=jnp.float32)[:, None, None, None, None], (b, t, h, w, 3))
  return clips, jax.nn.one_hot(jnp.arange(b), b)


def test_cutmix_same_box_all_frames_and_area_lambda():
  clips, targets = _batch()
  f = jax.jit(lambda k: mixing.mix(k, clips, targets, mixup_alpha=0.0, cutmix_alpha=1.0))
  for seed in range(5):
    out, tgt = f(jax.random.key(seed))
    out, tgt = np.asarray(out), np.asarray(tgt)
    np.testing.assert_allclose(tgt.sum(1), 1.0, atol=1e-6)
    for i in range(6):
      frames = out[i, :, :, :, 0]
      assert (frames == frames[:1]).all()  # same box in every frame
      own = (frames[0] == i).mean()
      partner = int(np.argmax(np.where(np.arange(6) == i, -1, tgt[i])))
      if own < 1.0:
        assert set(np.unique(frames[0])) == {i, partner}
      np.testing.assert_allclose(tgt[i, i], own, atol=1e-6)  # λ corrected to the box area


def test_mixup_one_lambda_per_batch():
  clips, targets = _batch()
  out, tgt = mixing.mix(jax.random.key(3), clips, targets, mixup_alpha=0.8, cutmix_alpha=0.0)
  out, tgt = np.asarray(out), np.asarray(tgt)
  lam = tgt[np.arange(6), np.arange(6)]
  assert np.allclose(lam, lam[0]) or np.allclose(lam, 1.0)
  perm = np.argmax(tgt - np.eye(6) * lam[:, None], 1)
  expected = lam[:, None] * np.arange(6)[:, None] + (1 - lam[:, None]) * perm[:, None]
  np.testing.assert_allclose(out[:, 0, 0, 0, 0], expected[:, 0], atol=1e-5)


def test_switch_between_cutmix_and_mixup_under_jit():
  cfg = config.video_focalnet_data().mixing
  clips, _ = _batch()
  f = jax.jit(lambda k: mixing.mix_batch(k, clips, jnp.arange(6) % 4, 4, cfg))
  kinds = set()
  for seed in range(16):
    out, tgt = f(jax.random.key(seed))
    np.testing.assert_allclose(np.asarray(tgt).sum(1), 1.0, atol=1e-5)
    vals = np.unique(np.asarray(out)[0, 0, :, :, 0])
    kinds.add("cutmix" if np.all(np.isin(vals, np.arange(6))) else "mixup")
  assert kinds == {"cutmix", "mixup"}


def test_no_mixing_is_identity():
  clips, targets = _batch()
  cfg = ml_collections.ConfigDict(dict(mixup_alpha=0.0, cutmix_alpha=0.0, switch_prob=0.5, label_smoothing=0.0))
  out, tgt = mixing.mix_batch(jax.random.key(0), clips, jnp.arange(6), 6, cfg)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(clips))
  np.testing.assert_array_equal(np.asarray(tgt), np.asarray(targets))
