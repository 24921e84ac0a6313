"""Video-FocalNet (Wasim et al., ICCV 2023) in Flax NNX.

A per-frame 2-D FocalNet (Yang et al., 2022) whose focal modulation gains a temporal branch
(paper Sec. 3.1, Eq. 3-9; official ``TalalWasim/Video-FocalNets/classification/videofocalnet.py``):

    clip [B, T, H, W, 3] --(b t) merge--> [B*T, H, W, 3]
      -> patch_embed (conv 4x4/4 + LN) -> layers[0..3] (blocks; conv 2x2/2 + LN at the end of
         stages 0-2) -> norm (LN) -> mean over tokens -> [B, T, C] -> mean over T -> head.

Inside the network the clip is kept as ``[B*T, H, W, C]`` with b outer and t inner (the official
``(b t)`` order); the temporal branch regroups it to ``[B*H*W, T, C]`` and back.

``design`` selects the spatio-temporal modelling of Fig. 4 (only (e) is released; (a)-(d) are
ablations the paper describes in two sentences each, implemented here as simply as possible):

* ``'spatio_temporal'`` (e), released: parallel spatial and temporal focal modulation, fused with
  the query by ``modulator_fusion`` (Fig. 6a: ``'multiply'`` released, ``'average'``: mean of the
  two modulators, ``'projection'``: a learned Dense ``fusion`` 2C->C on the concatenated
  modulators).
* ``'spatial_only'`` (a), Eq. 10: image FocalNet per frame, features averaged over T.
* ``'factorized_3d'`` (b): the spatial branch's contextualization becomes a factorised 3-D conv: at
  level l a 2-D depthwise k_l x k_l conv followed by the paper's temporal "point-wise" conv (a
  dense Conv1d over T with kernel k_l, as the released temporal branch), then GELU. No separate
  temporal branch; the global context is the spatial mean of the last level.
* ``'factorized_encoder'`` (c), after ViViT's factorised encoder: the 4 stages are spatial-only
  (design (a)); a temporal encoder of ``depths[-1]`` blocks at the last width follows, whose
  modulation (:class:`TemporalFocalModulation`) has its own query and 1-D depthwise convs over T,
  applied to every token of the last stage. Its blocks use the drop-path rate ``drop_path_rate``.
* ``'divided'`` (d), after TimeSformer's divided space-time attention: every block applies a
  temporal focal modulation (:class:`TemporalFocalModulation`, own LN ``norm_temporal``) and then
  the spatial one, each with its own residual, then the MLP.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vidjax.models import layers

Array = jax.Array

VARIANTS = {  # official factories videofocalnet_{tiny,small,base}
    "tiny": dict(depths=(2, 2, 6, 2), embed_dim=96),
    "small": dict(depths=(2, 2, 18, 2), embed_dim=96),
    "base": dict(depths=(2, 2, 18, 2), embed_dim=128),
}
DESIGNS = ("spatio_temporal", "spatial_only", "factorized_3d", "factorized_encoder", "divided")
FUSIONS = ("multiply", "average", "projection")
_ACT = ("act_batch", None, None, "act_embed")  # [B*T, H, W, C] at block boundaries


@dataclasses.dataclass(frozen=True)
class Config:
  """Video-FocalNet hyper-parameters (names follow the official yaml / factory arguments)."""
  variant: str = "tiny"
  depths: tuple[int, ...] | None = None  # None: from `variant`
  embed_dim: int | None = None  # None: from `variant`
  num_classes: int = 400
  num_frames: int = 8
  image_size: int = 224
  patch_size: int = 4
  mlp_ratio: float = 4.0
  drop_path_rate: float = 0.0
  drop_rate: float = 0.0
  init_std: float = 0.02  # N(0, std^2) of every Linear (official _init_weights)
  focal_levels: tuple[int, ...] = (2, 2, 2, 2)
  focal_windows: tuple[int, ...] = (3, 3, 3, 3)
  focal_factor: int = 2
  tubelet_size: int = 1
  use_postln: bool = False
  use_postln_in_modulation: bool = False
  normalize_modulator: bool = False
  use_layerscale: bool = False
  layerscale_value: float = 1e-4
  use_conv_embed: bool = False
  design: str = "spatio_temporal"
  modulator_fusion: str = "multiply"
  dtype: str = "float32"
  param_dtype: str = "float32"
  depthwise_impl: str = "auto"  # layers.depthwise_impl: CPU shift, else conv (focal convs)
  remat_policy: str = "none"  # layers._REMAT_POLICIES: none, full, save_attention, ...
  scan_layers: bool = False

  def __post_init__(self):
    if self.variant not in VARIANTS:
      raise ValueError(f"model.variant={self.variant!r}: expected one of {sorted(VARIANTS)}")
    v = VARIANTS[self.variant]
    depths = v["depths"] if self.depths is None else self.depths
    object.__setattr__(self, "depths", tuple(int(d) for d in depths))
    object.__setattr__(self, "embed_dim", int(v["embed_dim"] if self.embed_dim is None
                                              else self.embed_dim))
    object.__setattr__(self, "focal_levels", tuple(int(x) for x in self.focal_levels))
    object.__setattr__(self, "focal_windows", tuple(int(x) for x in self.focal_windows))
    _validate(self)

  @property
  def dims(self) -> tuple[int, ...]:
    """Stage widths: embed_dim * 2**i."""
    return tuple(self.embed_dim * 2**i for i in range(len(self.depths)))

  @property
  def kernel_sizes(self) -> tuple[tuple[int, ...], ...]:
    """Focal kernel per stage and level: focal_factor * l + focal_window (3, 5 as released)."""
    return tuple(tuple(self.focal_factor * l + w for l in range(n))
                 for n, w in zip(self.focal_levels, self.focal_windows))


def _validate(c: Config) -> None:
  def bad(field, value, expected):
    raise ValueError(f"model.{field}={value!r}: {expected}")
  n = len(c.depths)
  if n < 1 or any(d < 1 for d in c.depths):
    bad("depths", c.depths, "expected a non-empty sequence of positive block counts")
  if c.embed_dim < 1:
    bad("embed_dim", c.embed_dim, "expected a positive width")
  for name in ("focal_levels", "focal_windows"):
    v = getattr(c, name)
    if len(v) != n or any(x < 1 for x in v):
      bad(name, v, f"expected {n} positive values (one per stage of depths={c.depths})")
  if any(w % 2 == 0 for w in c.focal_windows) or c.focal_factor % 2:
    bad("focal_windows", c.focal_windows,
        f"focal kernels focal_factor*l+window must be odd ('same' padding k//2); focal_factor="
        f"{c.focal_factor}")
  if c.num_classes < 1:
    bad("num_classes", c.num_classes, "expected >= 1")
  if c.tubelet_size < 1 or c.num_frames < 1 or c.num_frames % c.tubelet_size:
    bad("num_frames", c.num_frames, f"expected a positive multiple of tubelet_size="
        f"{c.tubelet_size}")
  stride = c.patch_size * 2 ** (n - 1)
  if c.patch_size < 1 or c.image_size % stride:
    bad("image_size", c.image_size, f"expected a multiple of patch_size*2**(stages-1)={stride} "
        f"(stem stride {c.patch_size} then {n - 1} 2x downsamples; 4*2**3=32 as released)")
  if c.mlp_ratio <= 0:
    bad("mlp_ratio", c.mlp_ratio, "expected > 0")
  if not 0 <= c.drop_path_rate < 1:
    bad("drop_path_rate", c.drop_path_rate, "expected in [0, 1)")
  if not 0 <= c.drop_rate < 1:
    bad("drop_rate", c.drop_rate, "expected in [0, 1)")
  if c.design not in DESIGNS:
    bad("design", c.design, f"expected one of {list(DESIGNS)}")
  if c.modulator_fusion not in FUSIONS:
    bad("modulator_fusion", c.modulator_fusion, f"expected one of {list(FUSIONS)}")
  if c.modulator_fusion != "multiply" and c.design != "spatio_temporal":
    bad("modulator_fusion", c.modulator_fusion,
        f"only design='spatio_temporal' has two modulators to fuse (design={c.design!r})")
  for name in ("dtype", "param_dtype"):
    try:
      layers.dtype_from_name(getattr(c, name))
    except ValueError as e:
      raise ValueError(f"model.{name}: {e}") from None
  if c.depthwise_impl not in layers.DEPTHWISE_IMPLS:
    bad("depthwise_impl", c.depthwise_impl, f"expected one of {list(layers.DEPTHWISE_IMPLS)}")
  layers.remat_policy(c.remat_policy)


# ``config.model`` -> :class:`Config` (``name`` ignored; unknown keys rejected with the nearest).
config_from_dict = functools.partial(layers.config_from_dict, Config, network="Video-FocalNet")


# ----------------------------------------------------------------------------- initialisers

# Official _init_weights: timm trunc_normal_(std=.02) on every nn.Linear truncates at +-2
# *absolute* (100 sigma), so it is N(0, 0.02^2) in practice; flax's truncated_normal would cut at
# 2 sigma instead. Linear biases 0. Convolutions are not touched by _init_weights and keep
# PyTorch's default U(+-1/sqrt(fan_in)) for weight and bias (the ``layers.conv`` default); that
# includes the modulators ``h`` (Conv2d 1x1) and ``h_temporal`` (Conv1d k=1), Dense layers here
# (:func:`_modulator`). ``init_std`` (config) is the Linear std: 0.02 as released.
def _trunc(cfg: "Config") -> layers.Initializer:
  return nnx.initializers.normal(stddev=cfg.init_std)


def _modulator(cfg: "Config", dim: int, rngs: nnx.Rngs) -> nnx.Linear:
  """``h`` / ``h_temporal``: a 1x1 conv in the official code, i.e. a Dense with PyTorch's default
  conv init (weight and bias U(+-1/sqrt(C))); its bias gives the modulator a non-zero start."""
  init = layers.torch_uniform(dim)
  return layers.dense(cfg, dim, dim, ("embed", "embed_out"), rngs=rngs, kernel_init=init,
                      bias_init=init)


# ----------------------------------------------------------------------------- modulation

def _to_time_major(x: Array, num_frames: int) -> Array:
  """[B*T, H, W, C] -> [B*H*W, T, C] (one sequence over time per pixel; b-major)."""
  n, h, w, c = x.shape
  x = x.reshape(n // num_frames, num_frames, h, w, c).transpose(0, 2, 3, 1, 4)
  return x.reshape(-1, num_frames, c)


def _from_time_major(x: Array, shape: tuple[int, ...]) -> Array:
  """Inverse of :func:`_to_time_major` for a target ``[B*T, H, W, C']``."""
  n, h, w, _ = shape
  t = x.shape[1]
  x = x.reshape(n // t, h, w, t, x.shape[-1]).transpose(0, 3, 1, 2, 4)
  return x.reshape(n, h, w, x.shape[-1])


def _aggregate(ctx: Array, gates: Array, focal_layers, mean_axes: tuple[int, ...],
               normalize: bool, extra=None) -> Array:
  """Hierarchical contextualization + gated aggregation (Eq. 6-8).

  ``ctx^l = GELU(conv_l(ctx^{l-1}))`` chained over levels, ``out = sum_l ctx^l * g_l +
  GELU(mean(ctx^L)) * g_{L+1}``; ``extra[l]`` (design (b)) follows conv_l before the GELU.
  """
  levels = len(focal_layers)
  out = 0
  for l in range(levels):
    ctx = focal_layers[l](ctx)
    if extra is not None:
      ctx = extra[l](ctx)
    ctx = layers.gelu(ctx)
    out = out + ctx * gates[..., l:l + 1]
  ctx_global = layers.gelu(ctx.mean(mean_axes, keepdims=True))
  out = out + ctx_global * gates[..., levels:]
  if normalize:
    out = out / (levels + 1)
  return out


def _depthwise_2d(cfg: Config, dim: int, kernels: Sequence[int], rngs: nnx.Rngs) -> nnx.List:
  """focal_layers: one depthwise k_l x k_l conv per level (no bias)."""
  return nnx.List([
      layers.conv(cfg, dim, dim, (k, k), ("conv_spatial", "conv_spatial", None, "conv_out"),
                  rngs=rngs, padding="SAME", groups=dim, use_bias=False) for k in kernels])


def _temporal_convs(cfg: Config, dim: int, kernels: Sequence[int], rngs: nnx.Rngs, *,
                    depthwise: bool) -> nnx.List:
  """focal_layers_temporal: one Conv1d over T per level (dense as released, or depthwise)."""
  names = ("conv_temporal", None if depthwise else "conv_in", "conv_out")
  return nnx.List([
      layers.conv(cfg, dim, dim, (k,), names, rngs=rngs, padding="SAME",
                  groups=dim if depthwise else 1, use_bias=False) for k in kernels])


class FocalModulation(nnx.Module):
  """Image focal modulation (FocalNet Eq. 1): ``proj(q * h(sum_l g_l z_l))`` per frame.

  With ``factorized_3d`` (Fig. 4b) every level is DWConv2d then a dense Conv1d over T
  (``focal_layers_temporal[l]``), followed by GELU.
  """

  def __init__(self, cfg: Config, dim: int, level: int, kernels: Sequence[int], *,
               factorized_3d: bool = False, rngs: nnx.Rngs):
    self.level, self.normalize = level, cfg.normalize_modulator
    self.f = layers.dense(cfg, dim, 2 * dim + level + 1, ("embed", "focal_proj"),
                          rngs=rngs, kernel_init=_trunc(cfg))
    self.h = _modulator(cfg, dim, rngs)
    self.proj = layers.dense(cfg, dim, dim, ("embed", "embed_out"),
                             rngs=rngs, kernel_init=_trunc(cfg))
    self.focal_layers = _depthwise_2d(cfg, dim, kernels, rngs)
    self.focal_layers_temporal = (_temporal_convs(cfg, dim, kernels, rngs, depthwise=False)
                                  if factorized_3d else None)
    self.ln = layers.norm(cfg, dim, rngs=rngs) if cfg.use_postln_in_modulation else None

  def __call__(self, x: Array, num_frames: int, capture: bool = False):
    """[B*T, H, W, C] -> same; ``capture`` also returns ``{'spatial': h(ctx_s)}``."""
    c = x.shape[-1]
    y = layers.tag(self.f(x), "modulation_f")
    q, ctx, gates = y[..., :c], y[..., c:2 * c], y[..., 2 * c:]
    extra = None
    if self.focal_layers_temporal is not None:
      extra = [lambda z, conv=conv: _from_time_major(conv(_to_time_major(z, num_frames)),
                                                     z.shape)
               for conv in self.focal_layers_temporal]
    m_s = layers.tag(self.h(_aggregate(ctx, gates, self.focal_layers, (1, 2), self.normalize,
                                       extra)), "modulator")
    out = q * m_s
    if self.ln is not None:
      out = self.ln(out).astype(q.dtype)
    out = self.proj(out)
    return (out, {"spatial": m_s}) if capture else out


class SpatioTemporalFocalModulation(nnx.Module):
  """Spatio-temporal focal modulation (Eq. 4-9): ``proj(q * h(ctx_s) * h_temporal(ctx_t))``.

  Spatial branch: ``f`` C->2C+L+1 (q, ctx, gates), depthwise k_l x k_l convs, mean over H, W.
  Temporal branch: ``f_temporal`` C->C+L+1 (ctx, gates; no query), dense Conv1d over T, mean
  over T. ``modulator_fusion`` 'average' / 'projection' replace ``m_s * m_t`` (Fig. 6a).
  """

  def __init__(self, cfg: Config, dim: int, level: int, kernels: Sequence[int], *,
               rngs: nnx.Rngs):
    self.level, self.normalize, self.fusion_kind = level, cfg.normalize_modulator, \
        cfg.modulator_fusion
    self.f = layers.dense(cfg, dim, 2 * dim + level + 1, ("embed", "focal_proj"),
                          rngs=rngs, kernel_init=_trunc(cfg))
    self.h = _modulator(cfg, dim, rngs)
    self.focal_layers = _depthwise_2d(cfg, dim, kernels, rngs)
    self.proj = layers.dense(cfg, dim, dim, ("embed", "embed_out"),
                             rngs=rngs, kernel_init=_trunc(cfg))
    self.f_temporal = layers.dense(cfg, dim, dim + level + 1, ("embed", "focal_proj"),
                                   rngs=rngs, kernel_init=_trunc(cfg))
    self.h_temporal = _modulator(cfg, dim, rngs)
    self.focal_layers_temporal = _temporal_convs(cfg, dim, kernels, rngs, depthwise=False)
    self.ln = layers.norm(cfg, dim, rngs=rngs) if cfg.use_postln_in_modulation else None
    self.fusion = (layers.dense(cfg, 2 * dim, dim, ("mlp", "embed"),
                                rngs=rngs, kernel_init=_trunc(cfg))
                   if cfg.modulator_fusion == "projection" else None)

  def __call__(self, x: Array, num_frames: int, capture: bool = False):
    """[B*T, H, W, C] -> same; ``capture`` also returns ``{'spatial': h(ctx_s), 'temporal':
    h_temporal(ctx_t)}`` (Eq. 8-9), both [B*T, H, W, C]."""
    c = x.shape[-1]
    # Temporal branch on [B*H*W, T, .] (b-major regrouping of the (b t) batch).
    yt = layers.tag(self.f_temporal(_to_time_major(x, num_frames)), "modulation_f")
    ctx_t = _aggregate(yt[..., :c], yt[..., c:], self.focal_layers_temporal, (1,),
                       self.normalize)
    m_t = _from_time_major(layers.tag(self.h_temporal(ctx_t), "modulator"), x.shape)
    # Spatial branch on [B*T, H, W, .] (image FocalNet).
    y = layers.tag(self.f(x), "modulation_f")
    q, ctx, gates = y[..., :c], y[..., c:2 * c], y[..., 2 * c:]
    m_s = layers.tag(self.h(_aggregate(ctx, gates, self.focal_layers, (1, 2), self.normalize)),
                     "modulator")
    if self.fusion_kind == "multiply":
      out = q * m_s * m_t
    elif self.fusion_kind == "average":
      out = q * ((m_s + m_t) / 2)
    else:
      out = q * self.fusion(jnp.concatenate([m_s, m_t], axis=-1))
    if self.ln is not None:
      out = self.ln(out).astype(q.dtype)
    out = self.proj(out)
    return (out, {"spatial": m_s, "temporal": m_t}) if capture else out


class TemporalFocalModulation(nnx.Module):
  """Focal modulation along T only (designs (c), (d)): ``proj(q * h_temporal(ctx_t))``.

  ``f_temporal`` C->2C+L+1 (q, ctx, gates), 1-D depthwise convs over T, global mean over T.
  """

  def __init__(self, cfg: Config, dim: int, level: int, kernels: Sequence[int], *,
               rngs: nnx.Rngs):
    self.normalize = cfg.normalize_modulator
    self.f_temporal = layers.dense(cfg, dim, 2 * dim + level + 1, ("embed", "focal_proj"),
                                   rngs=rngs, kernel_init=_trunc(cfg))
    self.h_temporal = _modulator(cfg, dim, rngs)
    self.focal_layers_temporal = _temporal_convs(cfg, dim, kernels, rngs, depthwise=True)
    self.proj = layers.dense(cfg, dim, dim, ("embed", "embed_out"),
                             rngs=rngs, kernel_init=_trunc(cfg))

  def __call__(self, x: Array, num_frames: int, capture: bool = False):
    """[B*T, H, W, C] -> same; ``capture`` also returns ``{'temporal': h_temporal(ctx_t)}``."""
    c = x.shape[-1]
    y = layers.tag(self.f_temporal(_to_time_major(x, num_frames)), "modulation_f")
    q, ctx, gates = y[..., :c], y[..., c:2 * c], y[..., 2 * c:]
    m_t = layers.tag(self.h_temporal(_aggregate(ctx, gates, self.focal_layers_temporal, (1,),
                                                self.normalize)), "modulator")
    out = _from_time_major(self.proj(q * m_t), x.shape)
    return (out, {"temporal": _from_time_major(m_t, x.shape)}) if capture else out


# ----------------------------------------------------------------------------- blocks

def _maybe_dropout(rate: float) -> nnx.Dropout | None:
  """An unseeded ``drop_rate`` dropout (seeded by :class:`Model`), or None at rate 0."""
  return layers.dropout(rate, None) if rate > 0 else None


def _apply(layer, x: Array) -> Array:
  return x if layer is None else layer(x)


class Mlp(nnx.Module):
  """fc1 C->rC, exact GELU, fc2 rC->C (one ``drop``out after each, ``drop_rate``, 0 as released)."""

  def __init__(self, cfg: Config, dim: int, hidden: int, *, rngs: nnx.Rngs):
    self.fc1 = layers.dense(cfg, dim, hidden, ("embed", "mlp"), rngs=rngs, kernel_init=_trunc(cfg))
    self.fc2 = layers.dense(cfg, hidden, dim, ("mlp", "embed"), rngs=rngs, kernel_init=_trunc(cfg))
    self.drop = _maybe_dropout(cfg.drop_rate)

  def __call__(self, x: Array) -> Array:
    x = _apply(self.drop, layers.gelu(layers.tag(self.fc1(x), "mlp_hidden")))
    return _apply(self.drop, self.fc2(x))


class Block(nnx.Module):
  """Pre-LN Video-FocalNet block: ``x + dp(g1 * mod(LN(x)))``, ``x + dp(g2 * mlp(LN(x)))``.

  ``drop_path`` drops whole frames (one coin per row of [B*T, ...], as released) at this
  block's rate ``drop_rate`` (data, so a scanned stage keeps one rate per block); ``proj_drop``
  follows the modulation (``drop_rate``; 0 as released).
  """

  def __init__(self, cfg: Config, dim: int, level: int, kernels: Sequence[int], kind: str,
               drop_rate: float | Array, *, rngs: nnx.Rngs):
    self.use_postln = cfg.use_postln
    self.norm1 = layers.norm(cfg, dim, rngs=rngs)
    if kind == "spatio_temporal":
      self.modulation = SpatioTemporalFocalModulation(cfg, dim, level, kernels, rngs=rngs)
    elif kind == "temporal":
      self.modulation = TemporalFocalModulation(cfg, dim, level, kernels, rngs=rngs)
    else:  # 'spatial', 'factorized_3d', 'divided' (spatial part)
      self.modulation = FocalModulation(cfg, dim, level, kernels,
                                        factorized_3d=kind == "factorized_3d", rngs=rngs)
    if kind == "divided":
      self.norm_temporal = layers.norm(cfg, dim, rngs=rngs)
      self.modulation_temporal = TemporalFocalModulation(cfg, dim, level, kernels, rngs=rngs)
    else:
      self.norm_temporal = self.modulation_temporal = None
    self.norm2 = layers.norm(cfg, dim, rngs=rngs)
    self.mlp = Mlp(cfg, dim, int(dim * cfg.mlp_ratio), rngs=rngs)
    if cfg.use_layerscale:
      pdt = layers.dtype_from_name(cfg.param_dtype)
      init = layers.partitioned(nnx.initializers.constant(cfg.layerscale_value), ("norm",))
      self.gamma_1 = nnx.Param(init(rngs.params(), (dim,), pdt))
      self.gamma_2 = nnx.Param(init(rngs.params(), (dim,), pdt))
      self.gamma_temporal = (nnx.Param(init(rngs.params(), (dim,), pdt))
                             if kind == "divided" else None)
    else:
      self.gamma_1 = self.gamma_2 = self.gamma_temporal = None
    self.drop_path = layers.LayerDropPath(drop_rate, cfg.drop_path_rate)
    self.proj_drop = _maybe_dropout(cfg.drop_rate)

  def _scale(self, gamma, y: Array) -> Array:
    return y if gamma is None else gamma[...].astype(y.dtype) * y

  def _residual(self, norm, mod, x, num_frames, gamma, captured):
    y = mod(x if self.use_postln else norm(x), num_frames, captured is not None)
    if captured is not None:
      y, maps = y
      captured.update(maps)
    y = _apply(self.proj_drop, y)
    if self.use_postln:
      y = norm(y)
    return x + self.drop_path(self._scale(gamma, y))

  def __call__(self, x: Array, num_frames: int, capture: bool = False):
    """``x``: [B*T, H, W, C] -> same; ``capture`` also returns this block's modulators."""
    captured = {} if capture else None
    x = layers.constrain(x, _ACT)
    if self.modulation_temporal is not None:
      x = self._residual(self.norm_temporal, self.modulation_temporal, x, num_frames,
                         self.gamma_temporal, captured)
    x = self._residual(self.norm1, self.modulation, x, num_frames, self.gamma_1, captured)
    y = self.mlp(x if self.use_postln else self.norm2(x))
    if self.use_postln:
      y = self.norm2(y)
    x = x + self.drop_path(self._scale(self.gamma_2, y))
    x = layers.constrain(x, _ACT)
    return (x, captured) if capture else x


class PatchEmbed(nnx.Module):
  """Conv patchify + LN: stem (k4 s4, or k7 s4 p2 with conv_embed; (ts,4,4) Conv3d for
  tubelets) and downsample (k2 s2, or k3 s2 p1 with conv_embed)."""

  def __init__(self, cfg: Config, din: int, dout: int, *, is_stem: bool, rngs: nnx.Rngs):
    if is_stem:
      p = cfg.patch_size
      k, s, pad = ((7, 4, 2) if cfg.use_conv_embed else (p, p, 0))
    else:
      k, s, pad = ((3, 2, 1) if cfg.use_conv_embed else (2, 2, 0))
    kernel, strides, padding = (k, k), (s, s), ((pad, pad), (pad, pad))
    # The stem's RGB input axis (size 3) is never sharded.
    names = ("conv_spatial", "conv_spatial", None if is_stem else "conv_in", "conv_out")
    if is_stem and cfg.tubelet_size > 1:
      ts = cfg.tubelet_size
      kernel, strides, padding = (ts,) + kernel, (ts,) + strides, ((0, 0),) + padding
      names = ("conv_temporal",) + names
    self.proj = layers.conv(cfg, din, dout, kernel, names, rngs=rngs, strides=strides,
                            padding=padding)
    self.norm = layers.norm(cfg, dout, rngs=rngs)

  def __call__(self, x: Array) -> Array:
    return self.norm(self.proj(x))


class BasicLayer(nnx.Module):
  """One stage: ``depth`` blocks (a Python loop, or ``nnx.scan`` over blocks stacked by
  ``nnx.vmap``) and an optional downsample at the end (official ``layers.{i}.downsample``,
  stages 0-2)."""

  def __init__(self, cfg: Config, dim: int, depth: int, level: int, kernels: Sequence[int],
               kind: str, drop_path_rates: Sequence[float], out_dim: int | None, *,
               rngs: nnx.Rngs):
    self.scan, self.remat_policy = cfg.scan_layers, cfg.remat_policy
    make = lambda rate, r: Block(cfg, dim, level, kernels, kind, rate, rngs=r)
    if cfg.scan_layers:
      @nnx.vmap(in_axes=(0, 0), out_axes=0, transform_metadata={nnx.PARTITION_NAME: None})
      def stacked(rate: Array, r: nnx.Rngs) -> Block:
        return make(rate, r)
      # One key per stream split into `depth` keys (what `nnx.split_rngs` draws).
      self.blocks = stacked(jnp.asarray(drop_path_rates, jnp.float32), rngs.split(depth))
    else:
      self.blocks = nnx.List([make(float(r), rngs) for r in drop_path_rates])
    self.downsample = (PatchEmbed(cfg, dim, out_dim, is_stem=False, rngs=rngs)
                       if out_dim is not None else None)

  def __call__(self, x: Array, num_frames: int, capture: bool = False):
    """[B*T, H, W, C] -> stage output; ``capture`` also returns the last block's modulators."""
    run = layers.maybe_remat(lambda blk, x: blk(x, num_frames, capture), self.remat_policy)
    captured = None
    if self.scan:
      @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0))
      def body(x, blk):
        return run(blk, x) if capture else (run(blk, x), None)

      x, per_block = body(x, self.blocks)
      if capture:
        captured = jax.tree.map(lambda a: a[-1], per_block)
    else:
      for blk in self.blocks:
        x = run(blk, x)
        if capture:
          x, captured = x
    if self.downsample is not None:
      x = self.downsample(x)
    return (x, captured) if capture else x


class Model(nnx.Module):
  """Video-FocalNet: ``[B, T, H, W, 3]`` (normalised RGB) -> logits ``[B, num_classes]``.

  ``model.train()`` / ``model.eval()`` switch drop-path and dropout. Their randomness lives in
  ``dropout``-tagged streams held by the layers (``drop_path``, ``proj_drop``, ``mlp.drop``,
  ``pos_drop``); all of them are seeded from one key of the ``dropout`` (else ``default``)
  stream of ``rngs``, drawn after every weight, so the weights of a seed do not depend on the
  drop rates. ``nnx.reseed(model, dropout=key, policy='match_shape')`` re-keys them.
  """

  def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.tubelet_size = cfg.tubelet_size
    dims = cfg.dims
    self.patch_embed = PatchEmbed(cfg, 3, dims[0], is_stem=True, rngs=rngs)
    self.pos_drop = _maybe_dropout(cfg.drop_rate)
    kind = {"spatio_temporal": "spatio_temporal", "spatial_only": "spatial",
            "factorized_3d": "factorized_3d", "factorized_encoder": "spatial",
            "divided": "divided"}[cfg.design]
    dpr = [float(r) for r in np.linspace(0.0, cfg.drop_path_rate, sum(cfg.depths))]
    stages, start = [], 0
    for i, depth in enumerate(cfg.depths):
      last = i == len(cfg.depths) - 1
      stages.append(BasicLayer(cfg, dims[i], depth, cfg.focal_levels[i], cfg.kernel_sizes[i],
                               kind, dpr[start:start + depth], None if last else dims[i + 1],
                               rngs=rngs))
      start += depth
    self.layers = nnx.List(stages)
    self.temporal_encoder = (BasicLayer(
        cfg, dims[-1], cfg.depths[-1], cfg.focal_levels[-1], cfg.kernel_sizes[-1], "temporal",
        [cfg.drop_path_rate] * cfg.depths[-1], None, rngs=rngs)
                             if cfg.design == "factorized_encoder" else None)
    self.norm = layers.norm(cfg, dims[-1], rngs=rngs)
    self.head = layers.dense(cfg, dims[-1], cfg.num_classes, ("embed", "classes"),
                             rngs=rngs, kernel_init=_trunc(cfg),
                       dtype=jnp.float32)
    if cfg.drop_path_rate > 0 or cfg.drop_rate > 0:
      nnx.reseed(self, dropout=rngs.dropout(), policy="match_shape")

  def features(self, video: Array, capture: bool = False):
    """``[B, T, H, W, 3]`` -> per-frame pooled features ``[B, T', C]`` (T' = T / tubelet).

    ``capture=True`` also returns the modulators (see :meth:`__call__`).
    """
    b, t = video.shape[:2]
    dtype = layers.dtype_from_name(self.cfg.dtype)
    video = video.astype(dtype)
    if self.tubelet_size > 1:  # Conv3d stem on [B, T, H, W, 3], then merge (b t')
      x = self.patch_embed(video)
      t = x.shape[1]
      x = x.reshape((b * t,) + x.shape[2:])
    else:  # merge (b t): per-frame 2-D network
      x = self.patch_embed(video.reshape((b * t,) + video.shape[2:]))
    x = _apply(self.pos_drop, x)
    captured = {}
    stages = [(f"layers.{i}", stage) for i, stage in enumerate(self.layers)]
    if self.temporal_encoder is not None:
      stages.append(("temporal_encoder", self.temporal_encoder))
    for name, stage in stages:
      x = stage(x, t, capture)
      if capture:  # [B*T', H, W, C] -> [B, T', H, W, C]
        x, maps = x
        captured[name] = {k: m.reshape((b, t) + m.shape[1:]) for k, m in maps.items()}
    x = self.norm(x).mean(axis=(1, 2))  # LN per token, then mean over tokens (fp32)
    x = x.reshape(b, t, -1)
    return (x, captured) if capture else x

  def __call__(self, video: Array, *, capture: bool = False):
    """Logits ``[B, num_classes]`` (float32): features averaged over T, then the linear head.

    ``capture=True`` returns ``(logits, captured)`` with the same logits and, per stage
    (``'layers.0'``, ..., and ``'temporal_encoder'`` for design (c)), the modulators of its
    last block: ``'spatial'`` = h(ctx_s) and/or ``'temporal'`` = h_temporal(ctx_t) (Eq. 8-9),
    each ``[B, T', H_s, W_s, C_s]``. A static switch: off, the forward is unchanged.
    """
    out = self.features(video, capture)
    feats, captured = out if capture else (out, None)
    logits = self.head(feats.mean(axis=1))
    return (logits, captured) if capture else logits
