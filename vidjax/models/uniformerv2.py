"""UniFormerV2 (Li et al., ICCV 2023) in Flax NNX, computing exactly what the official code does.

Official code: OpenGVLab/UniFormerV2 ``slowfast/models/uniformerv2_model.py`` (names below mirror it,
so ``convert/uniformerv2_layout.py`` maps a checkpoint mechanically):

    Model                      = VisionTransformer: conv1 → per-frame CLS + spatial pos-embed → ln_pre
      transformer              = Transformer
        resblocks[i]           = ResidualAttentionBlock: local UniBlock, Eq. (3)-(5)
          lmhra1, lmhra2       = LocalMHRA (Local_MHRA): LT_MHRA, Eq. (6)
        dpe[j]                 = DPE, Eq. (8)
        dec[j]                 = GlobalUniBlock (Extractor): C_MHRA + FFN, Eq. (9)-(13)
        temporal_cls_token     = the learnable query q (zero init)
        balance                = α of Z = (1 - σ(balance))·F + σ(balance)·F^C (Sec. 3.5)
        proj                   = Head: LayerNorm → Dropout → Linear

Input clips are ``[B, T, H, W, 3]`` (channels last). After the stem, batch and time are merged
b-major, ``(b t)``: row ``b·T' + t``, exactly the official ``N·T`` order, so every reshape back to
``[B, T', h, w, C]`` is a plain reshape.

Beyond the released network (``fusion='sequential'``, ``num_queries=1``, ``use_dpe=True``) the
config exposes the paper's ablations (Tables 3-4); they build, run and train, but have no official
checkpoints:

* ``fusion='parallel'`` (Sec. 3.5 b): every global block reads the learnable query;
  ``F = Σ_j U^F[j] ⊙ X_j^G`` with ``U^F ∈ R^{N×C}`` (``transformer.fusion_weight``, init 1/N):
  the paper's "linear projection U^F ∈ R^{N×C}" of the concatenated tokens, read as one weight
  per (token, channel).
* ``fusion='hierarchical_kv'`` (c): ``X_j^G = G_j(q, [X_{j-1}^G, X_j^L])``, the previous video
  token prepended to the contextual tokens (nothing prepended for j = 0); ``F = X_N^G``.
* ``fusion='hierarchical_q'`` (d): ``X_j^G = G_j([X_{j-1}^G, q], X_j^L)``; ``X_j^G`` is the mean
  of all output query tokens. The queries never interact (a global block has no
  self-attention), so keeping only the learnable query's output would leave every earlier global
  block unused; averaging is the simplest read that lets ``X_{j-1}^G`` reach ``F = X_N^G``.
* ``num_queries=Q > 1`` (Table 3): Q learnable queries travel through the global blocks
  independently and ``F`` (or each ``X_j^G``) is their mean. Zero init would keep them identical
  forever, so Q > 1 queries start from N(0, 0.02²); Q = 1 keeps the released zero init.
* ``use_dpe=False``: no DPE (Table 3, "DPE ×").

``frozen=True`` (the released ``frozen_*`` models) drops ``balance`` and returns ``proj(F)``; the
backbone (``conv1``, ``class_embedding``, ``positional_embedding``, ``ln_pre``, ``resblocks``)
is then excluded from training by :func:`trainable_filter`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vidjax.models import layers

Array = jax.Array

# Backbone geometry of the three official builders (uniformerv2_b16 / _l14 / _l14_336).
VARIANTS = {
    "b16": dict(width=768, layers=12, heads=12, patch_size=16, image_size=224),
    "l14": dict(width=1024, layers=24, heads=16, patch_size=14, image_size=224),
    "l14_336": dict(width=1024, layers=24, heads=16, patch_size=14, image_size=336),
}
FUSIONS = ("sequential", "parallel", "hierarchical_kv", "hierarchical_q")
ATTENTION_IMPLS = ("xla", "cudnn")
# Parameters that the official FROZEN models do not train (substring match on the path).
FROZEN_BACKBONE = ("conv1", "class_embedding", "positional_embedding", "ln_pre", "resblocks")


@dataclasses.dataclass(frozen=True)
class Config:
  """UniFormerV2 hyper-parameters; the defaults are the released B/16 K400 8×224 model.

  ``width, layers, heads, patch_size, image_size`` default to the ``variant``'s values (set them
  for tiny test models). ``return_list`` defaults to the last ``n_layers`` blocks (the released
  choice for every family), ``n_layers`` to ``len(return_list)`` (else 4), ``n_head`` to
  ``heads`` and ``mlp_dropout`` to 0.5 per global block. ``n_layers=0`` (with ``return_list=()``)
  drops the global UniBlocks: the head reads the frame-mean CLS token only (with ``no_lmhra`` the
  per-frame CLIP ablation). After construction every field holds its resolved value.
  """

  variant: str = "b16"
  width: int | None = None
  layers: int | None = None
  heads: int | None = None
  patch_size: int | None = None
  image_size: int | None = None
  num_classes: int = 400
  num_frames: int = 8
  temporal_downsample: bool = False
  no_lmhra: bool = True
  double_lmhra: bool = True
  dw_reduction: float = 1.5
  return_list: tuple[int, ...] | None = None
  n_layers: int | None = None
  n_head: int | None = None
  mlp_factor: float = 4.0
  mlp_dropout: tuple[float, ...] | None = None
  cls_dropout: float = 0.5
  backbone_drop_path_rate: float = 0.0
  drop_path_rate: float = 0.0
  frozen: bool = False
  fusion: str = "sequential"
  num_queries: int = 1
  use_dpe: bool = True
  dtype: str = "float32"
  param_dtype: str = "float32"
  attention_impl: str = "xla"
  depthwise_impl: str = "auto"  # layers.depthwise_impl: CPU shift, else conv (DPE, LT_MHRA)
  remat_policy: str = "none"  # layers._REMAT_POLICIES: none, full, save_attention, ...
  scan_layers: bool = False

  def __post_init__(self):
    def fail(field: str, msg: str):
      raise ValueError(f"model.{field}={getattr(self, field)!r}: {msg}")

    def resolve(field: str, value: Any):
      object.__setattr__(self, field, value)

    if self.variant not in VARIANTS:
      fail("variant", f"expected one of {sorted(VARIANTS)}")
    for field, value in VARIANTS[self.variant].items():
      if getattr(self, field) is None:
        resolve(field, value)
      elif not isinstance(getattr(self, field), int) or getattr(self, field) < 1:
        fail(field, "expected a positive integer")
    for field in ("return_list", "mlp_dropout"):
      if getattr(self, field) is not None:
        resolve(field, tuple(getattr(self, field)))
    if self.n_layers is None:
      resolve("n_layers", len(self.return_list) if self.return_list is not None else 4)
    if self.return_list is None:
      resolve("return_list", tuple(range(self.layers - self.n_layers, self.layers)))
    if self.n_head is None:
      resolve("n_head", self.heads)
    if self.mlp_dropout is None:
      resolve("mlp_dropout", (0.5,) * self.n_layers)

    if self.width % self.heads:
      fail("heads", f"must divide width={self.width}")
    if self.width % self.n_head:
      fail("n_head", f"must divide width={self.width} (global blocks act on backbone features)")
    if self.image_size % self.patch_size:
      fail("image_size", f"must be divisible by patch_size={self.patch_size}")
    if self.num_frames < 1:
      fail("num_frames", "expected >= 1")
    if self.temporal_downsample and self.num_frames % 2:
      fail("num_frames", "must be even with temporal_downsample=True (temporal stride 2)")
    if self.num_classes < 1:
      fail("num_classes", "expected >= 1")
    r = self.return_list
    if len(r) > self.layers:
      fail("return_list", f"has {len(r)} entries but the backbone has only layers={self.layers}")
    if any(not isinstance(i, (int, np.integer)) or not 0 <= i < self.layers for i in r):
      fail("return_list", f"entries must be block indices in [0, {self.layers})")
    if len(set(r)) != len(r):
      fail("return_list", "has duplicated entries")
    if list(r) != sorted(r):
      fail("return_list", "must be sorted (global blocks read the backbone bottom-up)")
    if len(r) < 1 and self.n_layers != 0:
      fail("return_list", "needs at least one global block (or n_layers=0: no global blocks)")
    if self.n_layers == 0 and self.frozen:
      fail("n_layers", "frozen=True reads only the global blocks; needs n_layers >= 1")
    if self.n_layers != len(r):
      fail("n_layers", f"must equal len(return_list)={len(r)} (one global block per entry)")
    if len(self.mlp_dropout) != self.n_layers:
      fail("mlp_dropout", f"needs one rate per global block (n_layers={self.n_layers})")
    for field in ("cls_dropout", "backbone_drop_path_rate", "drop_path_rate"):
      if not 0.0 <= getattr(self, field) < 1.0:
        fail(field, "expected a rate in [0, 1)")
    if any(not 0.0 <= p < 1.0 for p in self.mlp_dropout):
      fail("mlp_dropout", "expected rates in [0, 1)")
    if self.dw_reduction <= 0 or int(self.width // self.dw_reduction) < 1:
      fail("dw_reduction", f"int(width // dw_reduction) must be >= 1 (width={self.width})")
    if self.mlp_factor <= 0 or round(self.mlp_factor * self.width) < 1:
      fail("mlp_factor", "expected > 0")
    if self.fusion not in FUSIONS:
      fail("fusion", f"expected one of {list(FUSIONS)}")
    if self.num_queries < 1:
      fail("num_queries", "expected >= 1")
    for field in ("dtype", "param_dtype"):
      try:
        layers.dtype_from_name(getattr(self, field))
      except ValueError as e:
        fail(field, str(e))
    if self.attention_impl not in ATTENTION_IMPLS:
      fail("attention_impl", f"expected one of {list(ATTENTION_IMPLS)}")
    if self.depthwise_impl not in layers.DEPTHWISE_IMPLS:
      fail("depthwise_impl", f"expected one of {list(layers.DEPTHWISE_IMPLS)}")
    layers.remat_policy(self.remat_policy)  # raises naming model.remat_policy

  @property
  def frames_after_stem(self) -> int:
    """T': the number of frames after the (optionally temporally strided) patch embedding."""
    return self.num_frames // 2 if self.temporal_downsample else self.num_frames

  @property
  def grid(self) -> int:
    """h = w: tokens per side of a frame."""
    return self.image_size // self.patch_size


# ``config.model`` -> :class:`Config` (``name`` ignored; unknown keys rejected with the nearest).
config_from_dict = functools.partial(layers.config_from_dict, Config, network="UniFormerV2")


def trainable_filter(cfg: Config) -> Any:
  """nnx filter of the trained parameters: all ``nnx.Param`` unless ``cfg.frozen``.

  Frozen models (official ``FROZEN True``) train only ``temporal_cls_token``, ``dpe``, ``dec``
  and ``proj``; ``conv1``, ``class_embedding``, ``positional_embedding``, ``ln_pre`` and
  ``resblocks`` keep their (CLIP) values.
  """
  if not cfg.frozen:
    return nnx.Param
  return nnx.All(nnx.Param, nnx.Not(nnx.Any(*(nnx.PathContains(k) for k in FROZEN_BACKBONE))))


# ----------------------------------------------------------------------------------------------
# Initialisers (PyTorch defaults where the official code keeps them; CLIP weights replace the
# backbone's anyway).

# xavier_uniform of the packed (3C, C) in_proj_weight, applied to each (C, C) block.
_packed_xavier = nnx.initializers.variance_scaling(0.5, "fan_avg", "uniform")
_zeros = layers.zeros_init


def _param(rngs: nnx.Rngs, init: layers.Initializer, shape: tuple[int, ...], names, dtype):
  return nnx.Param(layers.partitioned(init, names)(rngs.params(), shape, dtype))


def _conv(cin: int, cout: int, kernel: tuple[int, int, int], cfg: Config, *, rngs: nnx.Rngs,
          groups: int = 1, padding: Any = "VALID", strides: Any = 1, use_bias: bool = True,
          kernel_init: layers.Initializer = layers.torch_kernel_init,
          bias_init: layers.Initializer | None = None) -> nnx.Conv:
  """Conv3d on [B, T, H, W, C]; kernel (kT, kH, kW, C_in/groups, C_out), PyTorch init."""
  # Depthwise (size-1) and RGB (size-3) input axes are never sharded.
  in_name = "conv_in" if cin // groups > 3 else None
  return layers.conv(cfg, cin, cout, kernel, (None, None, None, in_name, "conv_out"), rngs=rngs,
                     strides=strides, padding=padding, groups=groups, use_bias=use_bias,
                     kernel_init=kernel_init, bias_init=bias_init)


# ----------------------------------------------------------------------------------------------
# Building blocks.


class MultiheadAttention(nnx.Module):
  """MHRA with softmax affinity, Eq. (1)-(2) / (11)-(13): Concat_n(softmax(Q_n K_nᵀ/√d) V_n) U.

  The official packed ``in_proj_weight`` rows [q; k; v] are ``q_proj``, ``k_proj``, ``v_proj``.
  """

  def __init__(self, width: int, heads: int, cfg: Config, *, zero_out: bool, impl: str,
               rngs: nnx.Rngs):
    self.heads = heads
    self.impl = impl
    qkv = dict(kernel_init=_packed_xavier, rngs=rngs)
    self.q_proj = layers.dense(cfg, width, width, ("embed", "heads"), **qkv)
    self.k_proj = layers.dense(cfg, width, width, ("embed", "heads"), **qkv)
    self.v_proj = layers.dense(cfg, width, width, ("embed", "heads"), **qkv)
    self.out_proj = layers.dense(cfg, width, width, ("heads", "embed"), rngs=rngs,
                                 kernel_init=_zeros if zero_out else layers.torch_kernel_init)

  def __call__(self, x: Array, y: Array, *, weights: bool = False) -> Array | tuple[Array, Array]:
    """Queries from x [B, Lq, C] attend over y [B, Lk, C].

    ``weights=True`` also returns the softmax affinities [B, heads, Lq, Lk] (float32), computed
    beside the unchanged ``jax.nn.dot_product_attention`` output.
    """
    b, lq, c = x.shape
    split = lambda t: t.reshape(t.shape[0], t.shape[1], self.heads, c // self.heads)
    q, k, v = (layers.tag(split(p(t)), "attn_qkv")
               for p, t in ((self.q_proj, x), (self.k_proj, y), (self.v_proj, y)))
    out = layers.tag(layers.attention(q, k, v, self.impl).reshape(b, lq, c), "attn_out")
    out = self.out_proj(out)
    return (out, layers.attention_weights(q, k)) if weights else out


class Mlp(nnx.Module):
  """FFN: c_fc → QuickGELU → (Dropout, global blocks only) → c_proj."""

  def __init__(self, width: int, hidden: int, cfg: Config, *, rngs: nnx.Rngs,
               dropout: float | None = None, fc_init: layers.Initializer = layers.torch_kernel_init,
               zero_proj: bool = False):
    self.c_fc = layers.dense(cfg, width, hidden, ("embed", "mlp"), kernel_init=fc_init, rngs=rngs)
    self.dropout = layers.dropout(dropout, rngs) if dropout is not None else None
    self.c_proj = layers.dense(cfg, hidden, width, ("mlp", "embed"), rngs=rngs,
                               kernel_init=_zeros if zero_proj else layers.torch_kernel_init)

  def __call__(self, x: Array) -> Array:
    h = layers.quick_gelu(layers.tag(self.c_fc(x), "mlp_hidden"))
    if self.dropout is not None:
      h = self.dropout(h)
    return self.c_proj(h)


class LocalMHRA(nnx.Module):
  """Official ``Local_MHRA``: LT_MHRA of Eq. (3)/(6) on [B, T', h, w, C] patch tokens.

  ``pos_embed`` = BatchNorm3d (momentum 0.1 ≙ flax 0.9, eps 1e-5, stats over B, T', h, w) →
  1×1×1 conv C→int(C // dw_reduction) (V) → depthwise (3, 1, 1) temporal conv (a_n) →
  1×1×1 conv back to C (U, zero init: the block starts as the identity).
  """

  def __init__(self, width: int, cfg: Config, *, rngs: nnx.Rngs):
    re_d = int(width // cfg.dw_reduction)
    norm_init = lambda init: layers.partitioned(init, ("norm",))
    self.pos_embed = nnx.Sequential(
        nnx.BatchNorm(width, momentum=0.9, epsilon=1e-5, dtype=jnp.float32,
                      param_dtype=layers.dtype_from_name(cfg.param_dtype),
                      scale_init=norm_init(nnx.initializers.ones_init()),
                      bias_init=norm_init(_zeros), rngs=rngs),
        _conv(width, re_d, (1, 1, 1), cfg, rngs=rngs),
        _conv(re_d, re_d, (3, 1, 1), cfg, groups=re_d, padding=((1, 1), (0, 0), (0, 0)),
              rngs=rngs),
        _conv(re_d, width, (1, 1, 1), cfg, kernel_init=_zeros, bias_init=_zeros, rngs=rngs),
    )

  def __call__(self, x: Array) -> Array:
    return self.pos_embed(x)


class ResidualAttentionBlock(nnx.Module):
  """Local UniBlock, Eq. (3)-(5): [LT_MHRA] → spatial MHSA (GS_MHRA, Eq. 7) → [LT_MHRA] → FFN.

  A plain CLIP block when ``no_lmhra``. Acts on x [B·T', 1+hw, C] (b-major); attention runs per
  frame over its 1+hw tokens; LT_MHRA acts on the patch tokens only (per-frame CLS untouched).
  Drop-path as released: the attention/FFN branches drop token positions shared across the batch
  (timm's mask over dim 0 of the official sequence-first tensor), the LT_MHRA branches whole clips.
  """

  def __init__(self, cfg: Config, drop_rate: float | Array, *, rngs: nnx.Rngs):
    self.frames = cfg.frames_after_stem
    self.grid = cfg.grid
    c = cfg.width
    self.drop_path = layers.LayerDropPath(drop_rate, cfg.backbone_drop_path_rate, rngs=rngs)
    self.lmhra1 = None if cfg.no_lmhra else LocalMHRA(c, cfg, rngs=rngs)
    self.lmhra2 = (LocalMHRA(c, cfg, rngs=rngs)
                   if not cfg.no_lmhra and cfg.double_lmhra else None)
    self.attn = MultiheadAttention(c, cfg.heads, cfg, zero_out=False, impl=cfg.attention_impl,
                                   rngs=rngs)
    self.ln_1 = layers.norm(cfg, c, rngs=rngs)
    self.mlp = Mlp(c, 4 * c, cfg, rngs=rngs)
    self.ln_2 = layers.norm(cfg, c, rngs=rngs)

  def _local(self, x: Array, lmhra: LocalMHRA) -> Array:
    bt, length, c = x.shape
    # (b t) (h w) c -> b t h w c: a plain reshape because rows are b-major.
    p = x[:, 1:].reshape(bt // self.frames, self.frames, self.grid, self.grid, c)
    p = p + self.drop_path(lmhra(p), mask_axes=(0,))
    return jnp.concatenate([x[:, :1], p.reshape(bt, length - 1, c).astype(x.dtype)], axis=1)

  def __call__(self, x: Array) -> Array:
    x = layers.constrain(x, ("act_batch", "act_len", "act_embed"))
    if self.lmhra1 is not None:
      x = self._local(x, self.lmhra1)
    h = self.ln_1(x)
    x = x + self.drop_path(self.attn(h, h), mask_axes=(1,)).astype(x.dtype)
    if self.lmhra2 is not None:
      x = self._local(x, self.lmhra2)
    x = x + self.drop_path(self.mlp(self.ln_2(x)), mask_axes=(1,)).astype(x.dtype)
    return layers.constrain(x, ("act_batch", "act_len", "act_embed"))


class GlobalUniBlock(nnx.Module):
  """Global UniBlock (official ``Extractor``), Eq. (9)-(10) with C_MHRA of Eq. (11)-(13).

  q ← q + C_MHRA(ln_1(q), ln_3(X)); q ← q + FFN(ln_2(q)). Identity at init (zero ``out_proj`` and
  ``c_proj``); xavier-uniform ``in_proj`` and ``c_fc``. Drop-path: one coin per query position for
  the whole batch (timm's mask over dim 0 of the official (Q, N, C) tensor).
  """

  def __init__(self, cfg: Config, dropout: float, drop_rate: float, *, rngs: nnx.Rngs):
    c = cfg.width
    self.drop_path = layers.DropPath(drop_rate, rngs=rngs)
    # Lq = 1 gains nothing from fused kernels: always XLA.
    self.attn = MultiheadAttention(c, cfg.n_head, cfg, zero_out=True, impl="xla", rngs=rngs)
    self.ln_1 = layers.norm(cfg, c, rngs=rngs)
    self.mlp = Mlp(c, round(cfg.mlp_factor * c), cfg, dropout=dropout, rngs=rngs,
                   fc_init=nnx.initializers.xavier_uniform(), zero_proj=True)
    self.ln_2 = layers.norm(cfg, c, rngs=rngs)
    self.ln_3 = layers.norm(cfg, c, rngs=rngs)

  def __call__(self, q: Array, kv: Array, *, capture: bool = False
               ) -> Array | tuple[Array, Array]:
    """q [B, Q, C] queries, kv [B, T'·L, C] contextual tokens (per-frame CLS included).

    ``capture=True`` also returns the C_MHRA affinities softmax(q kᵀ/√d) [B, n_head, Q, T'·L].
    """
    a = self.attn(self.ln_1(q), self.ln_3(kv), weights=capture)
    a, w = a if capture else (a, None)
    q = q + self.drop_path(a, mask_axes=(1,))
    q = q + self.drop_path(self.mlp(self.ln_2(q)), mask_axes=(1,))
    q = layers.constrain(q, ("act_batch", None, "act_embed"))
    return (q, w) if capture else q


class Head(nnx.Module):
  """Official ``proj``: LayerNorm (proj.0) → Dropout(cls_dropout) (proj.1) → Linear (proj.2)."""

  def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
    self.norm = layers.norm(cfg, cfg.width, rngs=rngs)
    self.dropout = layers.dropout(cfg.cls_dropout, rngs)
    self.fc = layers.dense(cfg, cfg.width, cfg.num_classes, ("embed", "classes"), rngs=rngs,
                           kernel_init=layers.torch_kernel_init,
                           bias_init=layers.torch_uniform(cfg.width), dtype=jnp.float32)

  def __call__(self, z: Array) -> Array:
    return self.fc(self.dropout(self.norm(z))).astype(jnp.float32)


class Transformer(nnx.Module):
  """Backbone blocks, global UniBlocks with multi-stage fusion (Sec. 3.5) and the head."""

  def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
    self.cfg = cfg
    c, pdt = cfg.width, layers.dtype_from_name(cfg.param_dtype)
    q_init = _zeros if cfg.num_queries == 1 else nnx.initializers.normal(0.02)
    self.temporal_cls_token = _param(rngs, q_init, (1, cfg.num_queries, c),
                                     (None, None, "embed"), pdt) if cfg.n_layers else None
    self.balance = (None if cfg.frozen or not cfg.n_layers
                    else _param(rngs, _zeros, (c,), ("embed",), pdt))

    b_dpr = np.linspace(0.0, cfg.backbone_drop_path_rate, cfg.layers)
    if cfg.scan_layers:
      @nnx.vmap(in_axes=(0, 0), out_axes=0, transform_metadata={nnx.PARTITION_NAME: None})
      def stacked(rate, rngs):
        return ResidualAttentionBlock(cfg, rate, rngs=rngs)

      # One key per stream, split into `layers` keys (what `nnx.split_rngs` draws, without
      # rewriting the caller's streams in place).
      self.resblocks = stacked(jnp.asarray(b_dpr, jnp.float32), rngs.split(cfg.layers))
    else:
      self.resblocks = nnx.List(
          [ResidualAttentionBlock(cfg, float(r), rngs=rngs) for r in b_dpr])

    self.dpe = nnx.List([
        _conv(c, c, (3, 3, 3), cfg, groups=c, padding=((1, 1),) * 3, bias_init=_zeros, rngs=rngs)
        for _ in range(cfg.n_layers)]) if cfg.use_dpe else None
    dpr = np.linspace(0.0, cfg.drop_path_rate, cfg.n_layers)
    self.dec = nnx.List([GlobalUniBlock(cfg, cfg.mlp_dropout[j], float(dpr[j]), rngs=rngs)
                         for j in range(cfg.n_layers)])
    self.fusion_weight = (
        _param(rngs, nnx.initializers.constant(1.0 / cfg.n_layers), (cfg.n_layers, c),
               (None, "embed"), pdt) if cfg.fusion == "parallel" and cfg.n_layers else None)
    self.proj = Head(cfg, rngs=rngs)

  def backbone(self, x: Array) -> tuple[Array, list[Array]]:
    """Runs the resblocks on x [B·T', L, C]; returns the last output and those in return_list."""
    cfg = self.cfg
    block = layers.maybe_remat(lambda blk, h: blk(h), cfg.remat_policy)
    if cfg.scan_layers:
      @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0))
      def run(h, blk):
        h = block(blk, h)
        return h, h

      x, per_layer = run(x, self.resblocks)  # per_layer: [layers, B·T', L, C]
      return x, [per_layer[i] for i in cfg.return_list]
    feats = []
    for i, blk in enumerate(self.resblocks):
      x = block(blk, x)
      if i in cfg.return_list:
        feats.append(x)
    return x, feats

  def context(self, j: int, f: Array) -> Array:
    """X^C = DPE(X^L) + X^L on patch tokens (Eq. 8), then [B, T'·L, C] in t-major order."""
    cfg = self.cfg
    bt, length, c = f.shape
    t = cfg.frames_after_stem
    if self.dpe is not None:
      p = f[:, 1:].reshape(bt // t, t, cfg.grid, cfg.grid, c)  # (b t) (h w) c -> b t h w c
      p = p + self.dpe[j](p)
      f = jnp.concatenate([f[:, :1], p.reshape(bt, length - 1, c).astype(f.dtype)], axis=1)
    # (b t) l c -> b (t l) c: [frame0: cls, p0, ...; frame1: cls, ...], the official order.
    return layers.constrain(f.reshape(bt // t, t * length, c), ("act_batch", "act_len", "act_embed"))

  def fuse(self, feats: list[Array], attention: list | None = None) -> Array:
    """Multi-stage fusion (Sec. 3.5) of the global blocks' video tokens into F [B, C].

    With a list ``attention``, each global block appends its C_MHRA affinities to it.
    """
    cfg = self.cfg
    b = feats[0].shape[0] // cfg.frames_after_stem
    query = jnp.broadcast_to(self.temporal_cls_token[...],
                             (b, cfg.num_queries, cfg.width))
    mean_q = lambda t: jnp.mean(t, axis=1, keepdims=True)

    def dec(j, q, kv):
      if attention is None:
        return self.dec[j](q, kv)
      q, w = self.dec[j](q, kv, capture=True)
      attention.append(w)
      return q

    q, prev, tokens = query, None, []
    for j, f in enumerate(feats):
      kv = self.context(j, f)
      if cfg.fusion == "sequential":  # X_j = G_j(X_{j-1}, X_j^L)
        q = dec(j, q, kv)
      elif cfg.fusion == "parallel":  # X_j = G_j(q, X_j^L)
        tokens.append(mean_q(dec(j, query, kv)))
      elif cfg.fusion == "hierarchical_kv":  # X_j = G_j(q, [X_{j-1}, X_j^L])
        kv = kv if prev is None else jnp.concatenate([prev.astype(kv.dtype), kv], axis=1)
        prev = mean_q(dec(j, query, kv))
      else:  # hierarchical_q: X_j = mean of G_j([X_{j-1}, q], X_j^L) over the query tokens
        qj = query if prev is None else jnp.concatenate([prev.astype(query.dtype), query], axis=1)
        prev = mean_q(dec(j, qj, kv))
    if cfg.fusion == "sequential":
      return jnp.mean(q, axis=1)
    if cfg.fusion == "parallel":
      w = self.fusion_weight[...]
      return sum(w[j] * tok[:, 0] for j, tok in enumerate(tokens))
    return prev[:, 0]

  def __call__(self, x: Array, *, capture: bool = False, token_delta: Array | None = None
               ) -> Array | tuple[Array, dict[str, Any]]:
    """x [B·T', L, C] (b-major) → logits [B, num_classes] (float32); see :meth:`Model.__call__`."""
    cfg = self.cfg
    x, feats = self.backbone(x)
    if token_delta is not None or capture:
      bt, length, c = x.shape
      t = cfg.frames_after_stem
      if token_delta is not None:  # + δ on the last block's patch tokens, wherever they are read
        delta = token_delta.reshape(bt, length - 1, c).astype(x.dtype)
        x = jnp.concatenate([x[:, :1], x[:, 1:] + delta], axis=1)
        feats = [x if i == cfg.layers - 1 else f for i, f in zip(cfg.return_list, feats)]
      tokens = x[:, 1:].reshape(bt // t, t, cfg.grid, cfg.grid, c)  # (b t) (h w) c -> b t h w c
    attention = [] if capture else None
    bt, _, c = x.shape
    cls = jnp.mean(x[:, 0].reshape(bt // cfg.frames_after_stem, cfg.frames_after_stem, c),
                   axis=1).astype(jnp.float32)  # F^C = mean_t of the last block's CLS_t
    if not cfg.n_layers:  # no global blocks (ablation): the per-frame CLIP head on F^C alone
      logits = self.proj(cls)
      return (logits, dict(tokens=tokens, attention=())) if capture else logits
    f = self.fuse(feats, attention).astype(jnp.float32)
    if cfg.frozen:
      logits = self.proj(f)
    else:
      w = jax.nn.sigmoid(self.balance[...].astype(jnp.float32))
      logits = self.proj((1.0 - w) * f + w * cls)
    return (logits, dict(tokens=tokens, attention=tuple(attention))) if capture else logits


class Model(nnx.Module):
  """UniFormerV2 (official ``VisionTransformer``): clips [B, T, H, W, 3] → logits [B, classes]."""

  def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
    self.cfg = cfg
    c, p, pdt = cfg.width, cfg.patch_size, layers.dtype_from_name(cfg.param_dtype)
    if cfg.temporal_downsample:  # 3×p×p tubelets, temporal stride 2, padding 1: T' = T/2
      self.conv1 = _conv(3, c, (3, p, p), cfg, strides=(2, p, p),
                         padding=((1, 1), (0, 0), (0, 0)), use_bias=False, rngs=rngs)
    else:
      self.conv1 = _conv(3, c, (1, p, p), cfg, strides=(1, p, p), use_bias=False, rngs=rngs)
    emb = nnx.initializers.normal(c ** -0.5)
    self.class_embedding = _param(rngs, emb, (c,), ("embed",), pdt)
    self.positional_embedding = _param(rngs, emb, (cfg.grid ** 2 + 1, c), (None, "embed"), pdt)
    self.ln_pre = layers.norm(cfg, c, rngs=rngs)
    self.transformer = Transformer(cfg, rngs=rngs)

  def token_shape(self, batch: int) -> tuple[int, ...]:
    """Shape of the last block's patch tokens (``capture`` / ``token_delta``): [B, T', h, w, C]."""
    cfg = self.cfg
    return (batch, cfg.frames_after_stem, cfg.grid, cfg.grid, cfg.width)

  def __call__(self, x: Array, *, capture: bool = False, token_delta: Array | None = None
               ) -> Array | tuple[Array, dict[str, Any]]:
    """Clips [B, T, H, W, 3] → logits [B, num_classes] (float32).

    ``capture=True`` returns ``(logits, captured)`` with the same logits and
    ``captured['tokens']``: the last backbone block's patch tokens [B, T', h, w, C], and
    ``captured['attention']``: per global block (``dec[j]``), the query-to-token affinities of
    C_MHRA (Eq. 11-13), softmax(q kᵀ/√d) [B, n_head, Q, T'·(1+hw)] in float32 (key order: frame
    by frame, CLS then patches, as the context tokens; ``hierarchical_kv`` prepends the previous
    video token). ``token_delta`` [B, T', h, w, C] is added to those patch tokens before any
    later layer reads them: with zeros it changes nothing, and ``jax.grad`` with respect to it is
    the gradient of the output with respect to the tokens (a Grad-CAM through the real head).
    Both are static switches: off, the computation is exactly the plain forward.
    """
    cfg = self.cfg
    s = cfg.image_size
    if x.ndim != 5 or tuple(x.shape[1:]) != (cfg.num_frames, s, s, 3):
      raise ValueError(
          f"UniFormerV2 expects clips [B, {cfg.num_frames}, {s}, {s}, 3] (model.num_frames, "
          f"model.image_size); got {tuple(x.shape)}")
    if token_delta is not None and tuple(token_delta.shape) != self.token_shape(x.shape[0]):
      raise ValueError(f"token_delta must have shape {self.token_shape(x.shape[0])} "
                       f"[B, T', h, w, C]; got {tuple(token_delta.shape)}")
    dtype = layers.dtype_from_name(cfg.dtype)
    x = self.conv1(x)  # [B, T', h, w, C]
    b, t, h, w, c = x.shape
    x = x.reshape(b * t, h * w, c)  # merge batch and time b-major: row b·T' + t
    cls = jnp.broadcast_to(self.class_embedding[...].astype(dtype), (b * t, 1, c))
    x = jnp.concatenate([cls, x.astype(dtype)], axis=1)
    x = x + self.positional_embedding[...].astype(dtype)  # spatial only, shared by all frames
    x = self.ln_pre(x).astype(dtype)
    return self.transformer(layers.constrain(x, ("act_batch", "act_len", "act_embed")),
                            capture=capture, token_delta=token_delta)
