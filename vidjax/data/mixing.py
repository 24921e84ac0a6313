"""On-device (JAX) batch ops for the train step: normalisation, mixup/cutmix, label smoothing.

Host batches ship as uint8 `[B, T, H, W, 3]`; `normalize` casts and standardises on device.
`mix` follows CutmixMixupBlending as used by Video-FocalNet: per batch, CutMix with probability
`switch_prob` else Mixup, one λ per batch, the same box for every frame, partner = a random
permutation of the batch, targets = smoothed one-hot mixed with the same λ (cutmix λ corrected
to the box area).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax


def normalize(clips: jax.Array, mean: Sequence[float], std: Sequence[float],
              dtype=jnp.float32) -> jax.Array:
  """(x/255 − mean)/std on uint8 `[..., 3]` clips."""
  mean = jnp.asarray(mean, jnp.float32) * 255.0
  inv = 1.0 / (jnp.asarray(std, jnp.float32) * 255.0)
  return ((clips.astype(jnp.float32) - mean) * inv).astype(dtype)


def smooth_one_hot(labels: jax.Array, num_classes: int, smoothing: float) -> jax.Array:
  """off = s/K, on = 1 − s + s/K (timm's `mixup_target`), via `optax.smooth_labels`."""
  return optax.smooth_labels(jax.nn.one_hot(labels, num_classes), smoothing)


def cutmix_box(rng: jax.Array, lam: jax.Array, height: int, width: int):
  """timm `rand_bbox`: side √(1−λ)·(H, W), uniform centre, clipped; returns (y0, y1, x0, x1)."""
  ky, kx = jax.random.split(rng)
  cut = jnp.sqrt(1.0 - lam)
  ch, cw = (height * cut).astype(jnp.int32), (width * cut).astype(jnp.int32)
  cy = jax.random.randint(ky, (), 0, height)
  cx = jax.random.randint(kx, (), 0, width)
  return (jnp.clip(cy - ch // 2, 0, height), jnp.clip(cy + ch // 2, 0, height),
          jnp.clip(cx - cw // 2, 0, width), jnp.clip(cx + cw // 2, 0, width))


def mix(rng: jax.Array, clips: jax.Array, targets: jax.Array, *, mixup_alpha: float,
        cutmix_alpha: float, switch_prob: float = 0.5) -> tuple[jax.Array, jax.Array]:
  """Mixup/CutMix of clips `[B, T, H, W, C]` and (smoothed one-hot) targets `[B, K]`."""
  if mixup_alpha <= 0 and cutmix_alpha <= 0:
    return clips, targets
  k_sw, k_lm, k_lc, k_box, k_perm = jax.random.split(rng, 5)
  perm = jax.random.permutation(k_perm, clips.shape[0])
  if mixup_alpha > 0 and cutmix_alpha > 0:
    use_cutmix = jax.random.uniform(k_sw) < switch_prob
  else:
    use_cutmix = jnp.asarray(cutmix_alpha > 0)
  lam_mix = jax.random.beta(k_lm, max(mixup_alpha, 1e-3), max(mixup_alpha, 1e-3))
  lam_cut = jax.random.beta(k_lc, max(cutmix_alpha, 1e-3), max(cutmix_alpha, 1e-3))
  h, w = clips.shape[-3], clips.shape[-2]
  y0, y1, x0, x1 = cutmix_box(k_box, lam_cut, h, w)
  rows = jnp.arange(h)[:, None]
  cols = jnp.arange(w)[None, :]
  box = (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)  # [H, W], same for all frames
  lam_cut = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
  other = clips[perm]
  x_cut = jnp.where(box[None, None, :, :, None], other, clips)
  x_mix = lam_mix * clips.astype(jnp.float32) + (1.0 - lam_mix) * other.astype(jnp.float32)
  lam = jnp.where(use_cutmix, lam_cut, lam_mix)
  out = jnp.where(use_cutmix, x_cut.astype(jnp.float32), x_mix).astype(
      clips.dtype if jnp.issubdtype(clips.dtype, jnp.floating) else jnp.float32)
  return out, lam * targets + (1.0 - lam) * targets[perm]


def mix_batch(rng: jax.Array, clips: jax.Array, labels: jax.Array, num_classes: int,
              cfg) -> tuple[jax.Array, jax.Array]:
  """`config.data.mixing` entry point: smoothed one-hot targets, then `mix`."""
  targets = smooth_one_hot(labels, num_classes, cfg.label_smoothing)
  return mix(rng, clips, targets, mixup_alpha=cfg.mixup_alpha, cutmix_alpha=cfg.cutmix_alpha,
             switch_prob=cfg.switch_prob)
