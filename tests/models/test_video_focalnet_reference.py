"""Video-FocalNet vs an independent float64 numpy re-implementation of the official forward.

The reference below follows ``TalalWasim/Video-FocalNets/classification/videofocalnet.py`` as
documented in ``shared/reference/videofocalnet.md`` §1.2-1.4 and reads the weights **only**
through the official PyTorch state-dict keys and torch shapes (``convert.video_focalnet_layout.
from_flax``), doing the torch -> math transposes itself. It therefore checks the Flax model
*and* the Flax -> official mapping, in particular the temporal branch (``f_temporal``, dense
Conv1d over T, ``h_temporal``, (b t) b-major regrouping) that the timm parity test cannot see.

Tolerance: max |Δ logits| <= 1e-4, the project's fp32 parity bound under
``jax.default_matmul_precision('highest')`` (fp32 round-off through ~5 blocks at O(1) activations
is ~1e-6; a wrong transpose, ordering, padding or GELU flavour gives O(1e-2..1) errors).
"""

import importlib.util
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy.special import erf

from convert import video_focalnet_layout as layout
from vidjax import models

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOL = 1e-4  # fp32 model vs float64 reference, 'highest' matmul precision (see module doc)


# ----------------------------------------------------------------------------- numpy reference
# Everything is float64, channels-last [N, H, W, C] with N = B*T in (b t) order (b outer).

def _gelu(x):
  """nn.GELU(): exact erf form."""
  return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _layer_norm(x, w, b, eps=1e-5):
  """nn.LayerNorm over the last axis (biased variance, eps 1e-5)."""
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(var + eps) * w + b


def _linear(x, sd, key):
  """nn.Linear: x @ W.T + b with W [out, in]."""
  return x @ sd[f"{key}.weight"].T + sd[f"{key}.bias"]


def _patchify_conv(x, w, bias):
  """Conv2d(k, stride=k, no padding), torch weight [O, I, k, k], on x [N, H, W, I]."""
  n, h, wd, ci = x.shape
  k = w.shape[-1]
  x = x.reshape(n, h // k, k, wd // k, k, ci)
  return np.einsum("nhawbi,oiab->nhwo", x, w) + bias


def _patch_embed(x, sd, key):
  """PatchEmbed: proj conv (k = stride) then LayerNorm on the tokens."""
  x = _patchify_conv(x, sd[f"{key}.proj.weight"], sd[f"{key}.proj.bias"])
  return _layer_norm(x, sd[f"{key}.norm.weight"], sd[f"{key}.norm.bias"])


def _depthwise_conv2d(x, w):
  """Conv2d(C, C, k, groups=C, padding=k//2, bias=False), torch weight [C, 1, k, k].

  Cross-correlation: out[n,h,w,c] = sum_{a,b} xpad[n, h+a, w+b, c] * w[c, 0, a, b].
  """
  n, h, wd, c = x.shape
  k = w.shape[-1]
  p = k // 2
  xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  out = np.zeros_like(x)
  for a in range(k):
    for b in range(k):
      out += xp[:, a:a + h, b:b + wd, :] * w[:, 0, a, b]
  return out


def _conv1d_time(x, w):
  """Conv1d(C, C, k, padding=k//2, bias=False) over T, torch weight [Cout, Cin, k].

  x [M, T, Cin]: out[m,t,o] = sum_{a,i} xpad[m, t+a, i] * w[o, i, a].
  """
  m, t, _ = x.shape
  k = w.shape[-1]
  p = k // 2
  xp = np.pad(x, ((0, 0), (p, p), (0, 0)))
  out = np.zeros((m, t, w.shape[0]))
  for a in range(k):
    out += xp[:, a:a + t, :] @ w[:, :, a].T
  return out


def _modulation(x, sd, key, num_frames, levels, normalize):
  """SpatioTemporalFocalModulation on x [B*T, H, W, C] (already norm1'd), §1.4."""
  n, h, wd, c = x.shape
  b, t = n // num_frames, num_frames
  # Temporal branch: one sequence over time per pixel, (b h w) t with b outer.
  xt = x.reshape(b, t, h, wd, c).transpose(0, 2, 3, 1, 4).reshape(b * h * wd, t, c)
  yt = _linear(xt, sd, f"{key}.f_temporal")
  ct, gt = yt[..., :c], yt[..., c:]
  assert gt.shape[-1] == levels + 1
  acc_t = 0.0
  for l in range(levels):
    ct = _gelu(_conv1d_time(ct, sd[f"{key}.focal_layers_temporal.{l}.0.weight"]))
    acc_t = acc_t + ct * gt[..., l:l + 1]
  acc_t = acc_t + _gelu(ct.mean(1, keepdims=True)) * gt[..., levels:levels + 1]
  if normalize:
    acc_t = acc_t / (levels + 1)
  mt = acc_t @ sd[f"{key}.h_temporal.weight"][:, :, 0].T + sd[f"{key}.h_temporal.bias"]
  mt = mt.reshape(b, h, wd, t, c).transpose(0, 3, 1, 2, 4).reshape(n, h, wd, c)
  # Spatial branch (image FocalNet per frame).
  y = _linear(x, sd, f"{key}.f")
  q, cs, gs = y[..., :c], y[..., c:2 * c], y[..., 2 * c:]
  acc_s = 0.0
  for l in range(levels):
    cs = _gelu(_depthwise_conv2d(cs, sd[f"{key}.focal_layers.{l}.0.weight"]))
    acc_s = acc_s + cs * gs[..., l:l + 1]
  glob = cs.mean(1, keepdims=True).mean(2, keepdims=True)  # mean over H, then over W
  acc_s = acc_s + _gelu(glob) * gs[..., levels:levels + 1]
  if normalize:
    acc_s = acc_s / (levels + 1)
  ms = acc_s @ sd[f"{key}.h.weight"][:, :, 0, 0].T + sd[f"{key}.h.bias"]
  return _linear(q * ms * mt, sd, f"{key}.proj")


def _block(x, sd, key, num_frames, levels, normalize):
  """Pre-LN VideoFocalNetBlock: x + mod(norm1(x)); x + mlp(norm2(x)) (gammas 1, dp 0)."""
  y = _layer_norm(x, sd[f"{key}.norm1.weight"], sd[f"{key}.norm1.bias"])
  x = x + _modulation(y, sd, f"{key}.modulation", num_frames, levels, normalize)
  y = _layer_norm(x, sd[f"{key}.norm2.weight"], sd[f"{key}.norm2.bias"])
  y = _linear(_gelu(_linear(y, sd, f"{key}.mlp.fc1")), sd, f"{key}.mlp.fc2")
  return x + y


def reference_forward(sd, video, *, depths, levels, normalize):
  """Official VideoFocalNet.forward on video [B, T, H, W, 3] -> logits [B, K] (float64)."""
  sd = {k: np.asarray(v, np.float64) for k, v in sd.items()}
  b, t = video.shape[:2]
  x = np.asarray(video, np.float64).reshape((b * t,) + video.shape[2:])  # (b t), b outer
  x = _patch_embed(x, sd, "patch_embed")
  for i, depth in enumerate(depths):
    for j in range(depth):
      x = _block(x, sd, f"layers.{i}.blocks.{j}", t, levels[i], normalize)
    if i < len(depths) - 1:
      x = _patch_embed(x, sd, f"layers.{i}.downsample")
  x = _layer_norm(x, sd["norm.weight"], sd["norm.bias"])
  feats = x.mean((1, 2)).reshape(b, t, -1).mean(1)  # pool tokens, then mean over frames
  return _linear(feats, sd, "head")


# ----------------------------------------------------------------------------- model side

def _tiny_model_config(**overrides):
  spec = importlib.util.spec_from_file_location(
      "vf_cfg_tiny_test_reference", f"{ROOT}/configs/video_focalnet/tiny_test.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  m = mod.get_config().model
  # tiny_test: depths (1,1,2,1), embed_dim 16, 4 frames of 64x64; deterministic here.
  m.drop_path_rate = 0.0
  m.num_classes = 6
  for k, v in overrides.items():
    setattr(m, k, v)
  return m


def _randomise(model, seed):
  """O(1)-scale random weights for every parameter (numpy, float32); returns the flat dict."""
  rng = np.random.default_rng(seed)
  state = nnx.state(model, nnx.Param)
  flat = {}
  for path, var in nnx.to_flat_state(state):
    shape, name = tuple(var.get_value().shape), path[-1]
    z = rng.standard_normal(shape)
    if name == "scale":  # LayerNorm
      w = 1.0 + 0.2 * z
    elif name == "bias":
      w = 0.3 * z
    elif name == "kernel":  # Dense [in, out], Conv [*k, in/groups, out]: fan_in = prod(:-1)
      w = 1.0 * z / np.sqrt(np.prod(shape[:-1]))
    else:
      raise AssertionError(f"unexpected parameter {path}")
    flat[path] = w.astype(np.float32)
    var.set_value(jnp.asarray(flat[path]))
  nnx.update(model, state)
  return flat


@nnx.jit
def _forward(model, x):
  return model(x)


def _build(normalize_modulator: bool, seed: int):
  mcfg = _tiny_model_config(normalize_modulator=normalize_modulator)
  model = models.abstract(mcfg)  # shapes only: every parameter is set by _randomise
  flat = _randomise(model, seed)
  models.fill_rest(model)
  model.eval()
  return mcfg, model, layout.from_flax(flat, model.cfg)


def _clip(mcfg, seed):
  rng = np.random.default_rng(seed)
  s = mcfg.image_size
  return rng.standard_normal((2, mcfg.num_frames, s, s, 3)).astype(np.float32)


@pytest.mark.parametrize("normalize_modulator", [False, True])
def test_logits_match_float64_reference_of_official_forward(normalize_modulator):
  mcfg, model, sd = _build(normalize_modulator, seed=3 + normalize_modulator)
  cfg = model.cfg
  shapes = layout.official_shapes(cfg)
  assert {k: v.shape for k, v in sd.items()} == shapes  # official keys and torch shapes only
  assert any("focal_layers_temporal" in k for k in sd)
  video = _clip(mcfg, seed=7)
  kw = dict(depths=cfg.depths, levels=cfg.focal_levels, normalize=normalize_modulator)

  t0 = time.perf_counter()
  ref = reference_forward(sd, video, **kw)
  t_ref = time.perf_counter() - t0
  with jax.default_matmul_precision("highest"):
    out = np.asarray(_forward(model, jnp.asarray(video)), np.float64)
  err = float(np.abs(out - ref).max())
  scale = float(np.abs(ref).max())

  # The temporal branch must matter: neutralise h_temporal (m_t == 1) in the reference.
  neutral = dict(sd)
  for k in sd:
    if ".h_temporal." in k:
      neutral[k] = np.zeros_like(sd[k]) if k.endswith("weight") else np.ones_like(sd[k])
  ref_neutral = reference_forward(neutral, video, **kw)
  rel_temporal = float(np.abs(ref_neutral - ref).max() / scale)
  print(f"normalize_modulator={normalize_modulator}: max|Δ logits| = {err:.2e} "
        f"(tol {TOL:.0e}; max|logit| {scale:.2f}); temporal branch relative effect "
        f"{rel_temporal:.2e}; numpy float64 reference {t_ref:.2f}s")
  assert scale > 0.1
  assert rel_temporal > 1e-2, rel_temporal
  assert err <= TOL, err


def test_first_block_modulation_matches_reference():
  """Intermediate: stem -> norm1 -> SpatioTemporalFocalModulation of layers.0.blocks.0."""
  mcfg, model, sd = _build(False, seed=5)
  video = _clip(mcfg, seed=9)
  b, t = video.shape[:2]

  @nnx.jit
  def first_modulation(model, x):
    x = model.patch_embed(x.reshape((b * t,) + x.shape[2:]))
    blk = model.layers[0].blocks[0]
    return blk.modulation(blk.norm1(x), t)

  with jax.default_matmul_precision("highest"):
    out = np.asarray(first_modulation(model, jnp.asarray(video)), np.float64)
  sd64 = {k: np.asarray(v, np.float64) for k, v in sd.items()}
  x = _patch_embed(video.astype(np.float64).reshape((b * t,) + video.shape[2:]), sd64,
                   "patch_embed")
  x = _layer_norm(x, sd64["layers.0.blocks.0.norm1.weight"], sd64["layers.0.blocks.0.norm1.bias"])
  ref = _modulation(x, sd64, "layers.0.blocks.0.modulation", t, model.cfg.focal_levels[0], False)
  err = float(np.abs(out - ref).max())
  # Temporal sensitivity of this intermediate: reversing time in the reference's input changes
  # the output (dense asymmetric Conv1d over T), so a flipped/ mis-ordered T would be caught.
  x_rev = x.reshape(b, t, *x.shape[1:])[:, ::-1].reshape(x.shape)
  ref_rev = _modulation(x_rev, sd64, "layers.0.blocks.0.modulation", t,
                        model.cfg.focal_levels[0], False)
  ref_rev = ref_rev.reshape(b, t, *x.shape[1:])[:, ::-1].reshape(x.shape)
  rel_rev = float(np.abs(ref_rev - ref).max() / np.abs(ref).max())
  print(f"first block modulation: max|Δ| = {err:.2e} (tol {TOL:.0e}; max|ref| "
        f"{np.abs(ref).max():.2f}); time-reversal relative effect {rel_rev:.2e}")
  assert out.shape == ref.shape == x.shape
  assert rel_rev > 1e-2
  assert err <= TOL, err
