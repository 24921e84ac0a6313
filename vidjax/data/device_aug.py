"""Train augmentation on the accelerator (config `data.train.augment_on='device'`).

The host still samples every random parameter with the per-record RNG (so a clip's augmentation
is the same draw in both modes, resumable with the pipeline state) and still applies the
geometry: decode at reduced size, RandAugment's geometric ops fused with the random-resized crop
into one warp (`transforms.fused_warp`) or the plain crop-resize. It ships the uint8 crop and
the parameters (`encode_params`); `apply` then runs, jitted and vmapped over clips and frames:
RandAugment's colour ops (same op and magnitude on every frame, histograms per frame, as timm's
ops applied frame by frame), horizontal flip, torchvision ColorJitter (per-frame order and
factors) and RandomGrayscale, all on uint8 values, returning uint8-valued float32 clips for
`mixing.normalize`. What moves: for Video-FocalNet the jitter/gray (~15 ms of ~30 ms host CPU
per clip), for UniFormerV2 the colour ops and flip (~3 ms). With `data.train.device_canvas`
the host ships the whole decoded frames (0-padded to the canvas) and `warp` also cuts the crop
with RandAugment's geometric ops on the device (Pillow's affine BILINEAR with fill 128, max |Δ|
1 against the host warp; crops without geometric ops use the same warp instead of PIL's resize),
leaving the host ~8 ms per prepared-frame clip (read, JPEG decode, copy). `blank` is then
computed on the canvas (not detected).

Parity with the host ops (Pillow, as timm / torchvision call them) for the same parameters,
tests/data/test_data_device_aug.py, on real h264 frames: Invert, Posterize, Solarize,
SolarizeAdd, Brightness, Color, Contrast, Equalize, Sharpness, flip and grayscale bit-identical
(integer formulas of Pillow's C code: L = (19595 R + 38470 G + 7471 B + 2^15) >> 16,
`Image.blend` truncating, SMOOTH 3x3 kernel with the border kept); AutoContrast ±1 on 4.3% of
the pixels (Pillow builds its table in double precision); ColorJitter max |Δ| 3, 1.7% of the
pixels (hue: Pillow's HSV round trip mixes float and double, float32 here). Whole clips through
the loader, device vs host for the same seed: UniFormerV2 recipe mean |Δ| 0.0006, max 1 (56 of
60 clips identical); Video-FocalNet mean 0.0011, max 3. Only RandAugment 'fused' semantics
(colour ops after the crop) exist here.

Cost (CPU compile, cost analysis, per 8×224 clip): colour ops + flip 0.05 GFLOP (scan body
counted once, ≤ 0.2), 0.14 GB accessed; flip + jitter + gray 0.23 GFLOP, 0.26 GB; a
UniFormerV2-B/16 train step is ≈ 890 GFLOP per clip. Pure jnp on batch arrays: no host sync.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

# Colour ops in `aug_ops` ids; geometric ops are applied on the host (in the crop warp).
COLOR_OPS = ("AutoContrast", "Equalize", "Invert", "Posterize", "Solarize", "SolarizeAdd",
             "Color", "Contrast", "Brightness", "Sharpness")
MAX_OPS = 4  # RandAugment layers (n4); fewer sampled ops are padded with -1


def encode_params(num_frames: int, color_ops, flip: bool, jitter=None, gray=None) -> dict:
  """One clip's host-sampled parameters as fixed-size arrays (`aug_*` batch fields).

  `color_ops`: RandAugment's non-geometric `(name, arg)` in order; `jitter`: per frame None or a
  `transforms.sample_color_jitter` tuple; `gray`: per frame bool."""
  ops = np.full((MAX_OPS,), -1, np.int32)
  args = np.zeros((MAX_OPS,), np.float32)
  if len(color_ops) > MAX_OPS:
    raise ValueError(f"{len(color_ops)} colour ops; device augmentation takes at most {MAX_OPS}")
  for k, (name, arg) in enumerate(color_ops):
    ops[k] = COLOR_OPS.index(name.replace("Increasing", ""))
    args[k] = 0.0 if arg is None else float(arg)
  jit = np.zeros((num_frames, 8), np.float32)  # order (4), brightness, contrast, saturation, hue
  on = np.zeros((num_frames,), bool)
  for i, p in enumerate(jitter or []):
    if p is not None:
      on[i] = True
      jit[i, :4] = p[0]
      jit[i, 4:] = p[1:]
  g = np.zeros((num_frames,), bool) if gray is None else np.asarray(gray, bool)
  return {"aug_ops": ops, "aug_args": args, "aug_flip": np.bool_(flip), "aug_jitter": jit,
          "aug_jitter_on": on, "aug_gray": g}


# ----------------------------------------------------------------------------------------------
# Pillow's integer/float formulas on one uint8-valued float32 frame [H, W, 3].

def _l(x):
  """Pillow RGB → L: (19595 R + 38470 G + 7471 B + 0x8000) >> 16."""
  xi = x.astype(jnp.int32)
  return ((xi[..., 0] * 19595 + xi[..., 1] * 38470 + xi[..., 2] * 7471 + 0x8000) >> 16
          ).astype(jnp.float32)


def _mean_l(x):
  """`int(ImageStat.Stat(im.convert('L')).mean[0] + 0.5)` (integer sum, one rounding)."""
  return jnp.floor(jnp.sum(_l(x).astype(jnp.int32)) / (x.shape[0] * x.shape[1]) + 0.5)


def _blend(degenerate, x, alpha):
  """`Image.blend(degenerate, x, alpha)`: float32 in1 + α(in2 − in1), clipped, truncated."""
  return jnp.floor(jnp.clip(degenerate + alpha * (x - degenerate), 0.0, 255.0))


def _autocontrast_lut(h):
  """ImageOps.autocontrast's LUT for one band's histogram `h` [256]."""
  idx = jnp.arange(256)
  lo = jnp.min(jnp.where(h > 0, idx, 255))
  hi = jnp.max(jnp.where(h > 0, idx, 0))
  lut = jnp.clip((idx - lo) * 255 // jnp.maximum(hi - lo, 1), 0, 255)  # int(ix·scale + offset)
  return jnp.where(hi > lo, lut, idx)


def _equalize_lut(h):
  """ImageOps.equalize's LUT for one band's histogram `h` [256]."""
  idx = jnp.arange(256)
  last = jnp.max(jnp.where(h > 0, idx, 0))
  step = (jnp.sum(h) - h[last]) // 255
  lut = jnp.clip((step // 2 + jnp.cumsum(h) - h) // jnp.maximum(step, 1), 0, 255)
  return jnp.where((jnp.sum(h > 0) > 1) & (step > 0), lut, idx)


def _smooth(x):
  """ImageFilter.SMOOTH (3×3 [1 1 1; 1 5 1; 1 1 1]/13, rounded; the 1-pixel border unchanged)."""
  p = jnp.pad(x, ((1, 1), (1, 1), (0, 0)))
  s = sum(p[dy:dy + x.shape[0], dx:dx + x.shape[1]] for dy in range(3) for dx in range(3))
  s = (s + 4 * x) / 13.0
  out = jnp.clip(jnp.floor(s + 0.5), 0, 255)
  inner = jnp.zeros(x.shape[:2], bool).at[1:-1, 1:-1].set(True)[..., None]
  return jnp.where(inner, out, x)


_LUT_OPS = ("AutoContrast", "Equalize", "Invert", "Posterize", "Solarize", "SolarizeAdd",
            "Contrast", "Brightness")


def _color_op(x, op, arg):
  """RandAugment colour op `COLOR_OPS[op]` (timm's Pillow call) with argument `arg`; −1 = none.

  All but Color and Sharpness are per-band lookup tables: the 256-entry tables of every op are
  formed (cheap) and one is gathered, so a vmapped batch with different ops per clip pays one
  pass over the pixels instead of one per op; Color/Sharpness blend with their degenerate image."""
  idx = jnp.arange(256, dtype=jnp.float32)
  xi = x.astype(jnp.int32)
  hist = jnp.stack([jnp.zeros((256,), jnp.int32).at[xi[..., c].ravel()].add(1) for c in range(3)])
  bits = jnp.clip(arg.astype(jnp.int32), 0, 8)
  mask = (~((1 << (8 - bits)) - 1)) & 255
  lin = lambda deg: jnp.floor(jnp.clip(deg + arg * (idx - deg), 0.0, 255.0))  # blend as a LUT
  band = lambda lut: jnp.broadcast_to(lut, (3, 256))
  luts = jnp.stack([
      jax.vmap(_autocontrast_lut)(hist).astype(jnp.float32),
      jax.vmap(_equalize_lut)(hist).astype(jnp.float32),
      band(255.0 - idx),
      band(jnp.where(bits >= 8, idx, (jnp.arange(256) & mask).astype(jnp.float32))),
      band(jnp.where(idx < arg, idx, 255.0 - idx)),
      band(jnp.where(idx < 128, jnp.minimum(255.0, idx + arg), idx)),
      band(lin(_mean_l(x))),
      band(lin(0.0)),
  ])  # [8, 3, 256]
  name = jnp.asarray([-1] + [(_LUT_OPS.index(n) if n in _LUT_OPS else -1) for n in COLOR_OPS])
  k = name[op + 1]
  lut = luts[jnp.maximum(k, 0)]
  looked = jnp.stack([lut[c][xi[..., c]] for c in range(3)], -1)
  is_color, is_sharp = op == COLOR_OPS.index("Color"), op == COLOR_OPS.index("Sharpness")
  deg = jnp.where(is_color, jnp.repeat(_l(x)[..., None], 3, -1), _smooth(x))
  blended = _blend(deg, x, arg)
  return jnp.where(k >= 0, looked, jnp.where(is_color | is_sharp, blended, x))


def _rgb_to_hsv(x):
  """Pillow `rgb2hsv` (float arithmetic, truncated to uint8)."""
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  maxc, minc = jnp.max(x, -1), jnp.min(x, -1)
  cr = jnp.maximum(maxc - minc, 1.0)
  s = (maxc - minc) / jnp.maximum(maxc, 1.0)
  rc, gc, bc = (maxc - r) / cr, (maxc - g) / cr, (maxc - b) / cr
  h = jnp.where(r == maxc, bc - gc, jnp.where(g == maxc, 2.0 + rc - bc, 4.0 + gc - rc))
  h = jnp.mod(h / 6.0 + 1.0, 1.0)
  same = maxc == minc
  uh = jnp.where(same, 0.0, jnp.clip(jnp.floor(h * 255.0), 0, 255))
  us = jnp.where(same, 0.0, jnp.clip(jnp.floor(s * 255.0), 0, 255))
  return uh, us, maxc


def _hsv_to_rgb(h, s, v):
  """Pillow `hsv2rgb`."""
  i = jnp.floor(h * 6.0 / 255.0)
  f = h * 6.0 / 255.0 - i
  fs = s / 255.0
  rnd = lambda a: jnp.clip(jnp.floor(a + 0.5), 0, 255)  # C round(), a ≥ 0
  p, q, t = rnd(v * (1.0 - fs)), rnd(v * (1.0 - fs * f)), rnd(v * (1.0 - fs * (1.0 - f)))
  i = i.astype(jnp.int32) % 6
  r = jnp.choose(i, [v, q, p, p, t, v], mode="clip")
  g = jnp.choose(i, [t, v, v, q, p, p], mode="clip")
  b = jnp.choose(i, [p, p, t, v, v, q], mode="clip")
  rgb = jnp.stack([r, g, b], -1)
  return jnp.where((s == 0)[..., None], v[..., None], rgb)


def _adjust_hue(x, factor):
  h, s, v = _rgb_to_hsv(x)
  shift = jnp.mod(jnp.trunc(factor * 255.0), 256.0)  # np.uint8(int(f·255) % 256)
  return _hsv_to_rgb(jnp.mod(h + shift, 256.0), s, v)


def _color_jitter(x, params):
  """torchvision ColorJitter on PIL for one frame: ops in `params[:4]` order, factors after.

  The ops before the hue slot, hue (the costly HSV round trip, evaluated once), the ops after."""
  b, c, s, h = params[4], params[5], params[6], params[7]
  order = params[:4].astype(jnp.int32)
  hue_at = jnp.argmax(order == 3)
  idx = jnp.arange(256, dtype=jnp.float32)

  def op(x, k, on):
    lin = lambda deg, a: jnp.floor(jnp.clip(deg + a * (idx - deg), 0.0, 255.0))
    lut = jnp.where(k == 0, lin(0.0, b), lin(_mean_l(x), c))
    looked = lut[x.astype(jnp.int32)]
    sat = _blend(jnp.repeat(_l(x)[..., None], 3, -1), x, s)
    y = jnp.where(k == 2, sat, looked)
    return jnp.where(on & (k != 3), y, x)
  for k in range(4):
    x = op(x, order[k], k < hue_at)
  x = _adjust_hue(x, h)
  for k in range(4):
    x = op(x, order[k], k > hue_at)
  return x


def _frame(x, ops, args, flip, jitter, jitter_on, gray, color_ops: bool, jitter_gray: bool):
  if color_ops:  # a scan, not an unrolled loop: XLA re-computed slot k inside slot k+1 (≈7×)
    x, _ = jax.lax.scan(lambda x, oa: (_color_op(x, oa[0], oa[1]), None), x, (ops, args))
  x = jnp.where(flip, x[:, ::-1], x)
  if jitter_gray:
    x = jnp.where(jitter_on, _color_jitter(x, jitter), x)
    x = jnp.where(gray, jnp.repeat(_l(x)[..., None], 3, -1), x)
  return x


def warp(frame, m, hw, out_hw: tuple[int, int], fill: float = 128.0):
  """Pillow's affine `transform` with BILINEAR and `fillcolor` on one frame [Hc, Wc, 3] whose
  valid part is the top-left `hw`: output pixel (x, y) samples the input at m·(x+½, y+½, 1);
  outside the valid part → `fill`; values truncated like Pillow's."""
  h, w = hw[0].astype(jnp.float32), hw[1].astype(jnp.float32)
  ys, xs = jnp.meshgrid(jnp.arange(out_hw[0]) + 0.5, jnp.arange(out_hw[1]) + 0.5, indexing="ij")
  xin = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
  yin = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
  valid = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)
  x0, y0 = jnp.floor(xin - 0.5), jnp.floor(yin - 0.5)
  dx, dy = (xin - 0.5 - x0)[..., None], (yin - 0.5 - y0)[..., None]
  cx = lambda v: jnp.clip(v, 0, hw[1] - 1).astype(jnp.int32)
  cy = lambda v: jnp.clip(v, 0, hw[0] - 1).astype(jnp.int32)
  xa, xb, ya, yb = cx(x0), cx(x0 + 1), cy(y0), cy(y0 + 1)
  v1 = frame[ya, xa] + (frame[ya, xb] - frame[ya, xa]) * dx
  v2 = frame[yb, xa] + (frame[yb, xb] - frame[yb, xa]) * dx
  v2 = jnp.where(((y0 + 1) < h)[..., None], v2, v1)
  return jnp.where(valid[..., None], jnp.trunc(v1 + (v2 - v1) * dy), fill)


def apply(batch: dict, color_ops: bool = True, jitter_gray: bool = True,
          crop_size: int | None = None) -> jax.Array:
  """Device augmentation of a train batch: uint8 `clip` [B, T, H, W, 3] and the `aug_*` fields
  → float32 [B, T, H, W, 3] with uint8 values (then `mixing.normalize`). Jittable, no host sync.

  `color_ops` / `jitter_gray` (static) leave out the parts a recipe never uses: RandAugment
  (`bool(data.train.rand_augment)`) and jitter/gray (`color_jitter_prob` or `grayscale_prob`).
  With `aug_warp` in the batch (`data.train.device_canvas`) the clip holds whole decoded frames
  on a canvas and `warp` cuts the `crop_size`² crop (RandAugment's geometric ops included)."""
  def clip(x, ops, args, flip, jitter, jitter_on, gray, *geometry):
    x = x.astype(jnp.float32)
    if geometry:
      x = jax.vmap(warp, (0, None, None, None))(x, *geometry, (crop_size, crop_size))
    per_frame = jax.vmap(_frame, in_axes=(0, None, None, None, 0, 0, 0, None, None))
    return per_frame(x, ops, args, flip, jitter, jitter_on, gray, color_ops, jitter_gray)
  geometry = (batch["aug_warp"], batch["aug_hw"]) if "aug_warp" in batch else ()
  if geometry and not crop_size:
    raise ValueError("a batch with aug_warp (data.train.device_canvas) needs crop_size")
  return jax.vmap(clip)(batch["clip"], batch["aug_ops"], batch["aug_args"], batch["aug_flip"],
                        batch["aug_jitter"], batch["aug_jitter_on"], batch["aug_gray"], *geometry)


AUG_KEYS: Sequence[str] = ("aug_ops", "aug_args", "aug_flip", "aug_jitter", "aug_jitter_on",
                           "aug_gray")
