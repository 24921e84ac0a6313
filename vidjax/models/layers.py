"""Shared building blocks for both networks.

Conventions:
  * LayerNorm eps is 1e-5 (PyTorch) and always computes in float32.
  * Every parameter carries logical axis names (``embed``, ``mlp``, ``heads``, ``conv_in``,
    ``conv_out``, ``classes``, ``norm``...). A mesh maps them onto physical axes through
    ``nnx.logical_axis_rules``; without an active mesh they are plain metadata.
  * Activations are constrained with :func:`constrain` at block boundaries using the logical names
    ``act_batch``, ``act_time``, ``act_len``, ``act_embed``.
  * Layers take the network's config ``cfg`` (any object with ``dtype`` and ``param_dtype``
    names, e.g. ``'bfloat16'`` / ``'float32'``) first: ``dense(cfg, din, dout, names, rngs=...)``.
  * Randomness of dropout and drop-path lives in ``dropout``-tagged ``nnx.RngStream`` s held by
    the layers (:func:`dropout_stream`); ``nnx.reseed(model, dropout=key, policy='match_shape')``
    re-keys all of them (a train step does this with its step key).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.core import spmd as core_spmd
from jax.ad_checkpoint import checkpoint_name

Array = jax.Array
Initializer = nnx.initializers.Initializer

LN_EPS = 1e-5

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def dtype_from_name(name: str) -> jnp.dtype:
  """Maps a config string ('float32', 'bfloat16', 'float16') to a dtype."""
  if name not in _DTYPES:
    raise ValueError(f"unknown dtype {name!r}: expected one of {sorted(_DTYPES)}")
  return _DTYPES[name]


class DtypeConfig(Protocol):
  """What the layer helpers read from a network config: compute and parameter dtype names."""
  dtype: str
  param_dtype: str


def config_from_dict(config_cls: type, d: Mapping[str, Any], network: str) -> Any:
  """``config_cls(**d)`` for ``config.model`` (``name`` ignored), rejecting unknown keys.

  The error names every unknown key as ``model.<key>``, the nearest valid key and all valid keys.
  """
  d = dict(d)
  d.pop("name", None)
  valid = [f.name for f in dataclasses.fields(config_cls)]
  unknown = sorted(set(d) - set(valid))
  if unknown:
    named = []
    for k in unknown:
      near = difflib.get_close_matches(k, valid, n=1)
      named.append(f"model.{k}" + (f" (did you mean model.{near[0]}?)" if near else ""))
    raise ValueError(f"unknown {network} config key(s) {', '.join(named)}; valid keys: {valid}")
  return config_cls(**d)


def partitioned(init: Initializer, names: Sequence[str | None]) -> Initializer:
  """Attaches logical axis names to an initializer (sharding is data, not code)."""
  return nnx.with_partitioning(init, tuple(names))


def linear(in_features: int, out_features: int, names: Sequence[str | None], *, rngs: nnx.Rngs,
           dtype: Any = None, param_dtype: Any = jnp.float32, use_bias: bool = True,
           kernel_init: Initializer = nnx.initializers.lecun_normal(),
           bias_init: Initializer = nnx.initializers.zeros_init()) -> nnx.Linear:
  """A Dense layer whose kernel has logical axes ``names`` (in, out) and bias ``names[1]``."""
  return nnx.Linear(
      in_features, out_features, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
      kernel_init=partitioned(kernel_init, names), bias_init=partitioned(bias_init, names[1:]),
      rngs=rngs)


def layer_norm(num_features: int, *, rngs: nnx.Rngs, param_dtype: Any = jnp.float32,
               name: str = "norm") -> nnx.LayerNorm:
  """PyTorch-compatible LayerNorm: eps 1e-5, computed and returned in float32."""
  return nnx.LayerNorm(
      num_features, epsilon=LN_EPS, dtype=jnp.float32, param_dtype=param_dtype,
      scale_init=partitioned(nnx.initializers.ones_init(), (name,)),
      bias_init=partitioned(nnx.initializers.zeros_init(), (name,)), rngs=rngs)


# PyTorch default initialisers. nn.Linear / nn.Conv weights: kaiming_uniform(a=sqrt 5), i.e.
# U(+-1/sqrt(fan_in)) written as a variance scaling; biases U(+-1/sqrt(fan_in)).
torch_kernel_init = nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
zeros_init = nnx.initializers.zeros_init()


def torch_uniform(fan_in: int) -> Initializer:
  """U(+-1/sqrt(fan_in)): PyTorch's default bias (and, same bound, conv weight) init."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def dense(cfg: DtypeConfig, din: int, dout: int, names: Sequence[str | None], *, rngs: nnx.Rngs,
          kernel_init: Initializer, bias_init: Initializer = zeros_init,
          dtype: Any = None) -> nnx.Linear:
  """:func:`linear` computing in ``cfg.dtype`` (or ``dtype``) with ``cfg.param_dtype`` weights."""
  return linear(din, dout, names, rngs=rngs,
                dtype=dtype_from_name(cfg.dtype) if dtype is None else dtype,
                param_dtype=dtype_from_name(cfg.param_dtype), kernel_init=kernel_init,
                bias_init=bias_init)


def conv(cfg: DtypeConfig, din: int, dout: int, kernel: Sequence[int],
         names: Sequence[str | None], *, rngs: nnx.Rngs, strides: Any = 1, padding: Any = "VALID",
         groups: int = 1, use_bias: bool = True, kernel_init: Initializer | None = None,
         bias_init: Initializer | None = None) -> nnx.Conv:
  """Channels-last N-d conv; kernel ``(*kernel, din/groups, dout)`` with logical axes ``names``.

  Initialisers default to PyTorch's: U(+-1/sqrt(fan_in)), fan_in = din/groups * prod(kernel).
  """
  fan_in = din // groups * math.prod(kernel)
  depthwise = groups == din == dout and groups > 1 and strides in (1, (1,) * len(kernel))
  shift = depthwise_impl(getattr(cfg, "depthwise_impl", "conv")) == "shift"
  cls = DepthwiseConv if depthwise and shift else nnx.Conv
  return cls(
      din, dout, tuple(kernel), strides=strides, padding=padding, feature_group_count=groups,
      use_bias=use_bias, dtype=dtype_from_name(cfg.dtype),
      param_dtype=dtype_from_name(cfg.param_dtype),
      kernel_init=partitioned(kernel_init or torch_uniform(fan_in), names),
      bias_init=partitioned(bias_init or torch_uniform(fan_in), names[-1:]), rngs=rngs)


DEPTHWISE_IMPLS = ("auto", "conv", "shift")


def depthwise_impl(name: str, backend: str | None = None) -> str:
  """``model.depthwise_impl`` decided: 'auto' (the default) is 'shift' on CPU, 'conv' elsewhere.

  XLA:CPU lowers grouped convolutions to a slow generic loop (UniFormerV2-B/16's four 3x3x3 DPE
  convs: 3.1 of its 5.5-s forward); GPUs and TPUs have native depthwise kernels. Both compute
  the same function with the same parameters (tested), so checkpoints do not depend on it.
  """
  if name != "auto":
    return name
  return "shift" if (backend or jax.default_backend()) == "cpu" else "conv"


def depthwise_shift(x: Array, kernel: Array, padding: Any) -> Array:
  """Stride-1 depthwise cross-correlation as a sum of shifted, per-channel scaled copies of x.

  ``kernel`` [*k, 1, C] (an ``nnx.Conv`` depthwise kernel), x [..., *spatial, C]: the same
  function as ``nnx.Conv(feature_group_count=C)`` (summation order differs: ~1 ulp), built
  from pads, slices and multiply-adds that XLA fuses. On CPU this is 5-10x faster than XLA's
  grouped convolution forward and backward; accelerators use "conv" (:func:`depthwise_impl`).
  """
  k = kernel.shape[:-2]
  nd = len(k)
  if padding == "SAME":
    padding = [((n - 1) // 2, n // 2) for n in k]
  elif padding == "VALID":
    padding = [(0, 0)] * nd
  elif isinstance(padding, int):
    padding = [(padding, padding)] * nd
  padding = [(p, p) if isinstance(p, int) else tuple(p) for p in padding]
  lead = x.ndim - nd - 1
  xp = jnp.pad(x, [(0, 0)] * lead + padding + [(0, 0)])
  out_shape = [xp.shape[lead + i] - k[i] + 1 for i in range(nd)]
  w = kernel[..., 0, :].astype(x.dtype)
  out = None
  for offset in np.ndindex(*k):
    window = xp[(slice(None),) * lead + tuple(slice(o, o + n) for o, n in zip(offset, out_shape))]
    term = window * w[offset]
    out = term if out is None else out + term
  return out


class DepthwiseConv(nnx.Conv):
  """``nnx.Conv`` (same parameters, same checkpoints) computing through :func:`depthwise_shift`.

  Chosen by ``layers.conv`` for stride-1 depthwise convs when the network config's
  ``depthwise_impl`` is 'shift' ('auto' on CPU).
  """

  def __call__(self, inputs: Array) -> Array:
    kernel = self.kernel[...]
    bias = None if self.bias is None else self.bias[...]
    x, kernel, bias = nnx.nn.dtypes.promote_dtype((inputs, kernel, bias), dtype=self.dtype)
    y = depthwise_shift(x, kernel, self.padding)
    return y if bias is None else y + bias


def norm(cfg: DtypeConfig, dim: int, *, rngs: nnx.Rngs) -> nnx.LayerNorm:
  """:func:`layer_norm` with ``cfg.param_dtype`` parameters."""
  return layer_norm(dim, rngs=rngs, param_dtype=dtype_from_name(cfg.param_dtype))


def quick_gelu(x: Array) -> Array:
  """CLIP's QuickGELU: x * sigmoid(1.702 x) (not erf-GELU)."""
  return x * jax.nn.sigmoid(1.702 * x)


def gelu(x: Array) -> Array:
  """Exact erf GELU, as torch ``nn.GELU()`` (flax defaults to the tanh approximation)."""
  return jax.nn.gelu(x, approximate=False)


def drop_path(x: Array, rate: Array | float, key: Array, mask_axes: Sequence[int] = (0,)) -> Array:
  """Stochastic depth as timm ``DropPath``: zero whole slices, scale the rest by 1/keep.

  ``mask_axes`` lists the axes of ``x`` that get independent coins; all other axes share one
  (timm draws ``(x.shape[0], 1, ...)``). ``rate`` may be traced (a per-layer scanned input);
  rate 0 keeps ``x`` exactly.
  """
  keep = 1.0 - jnp.asarray(rate, jnp.float32)
  shape = tuple(x.shape[a] if (a in mask_axes or a - x.ndim in mask_axes) else 1
                for a in range(x.ndim))
  mask = jax.random.bernoulli(key, keep, shape)
  return x * (mask / keep).astype(x.dtype)


def dropout_stream(rngs: nnx.Rngs | None) -> nnx.RngStream:
  """The ``dropout``-tagged RNG stream a stochastic layer holds.

  Seeded by one key drawn from ``rngs``' ``dropout`` stream (its ``default`` stream when it has
  none, as ``nnx.Dropout`` does). ``None`` gives an unseeded stream (key 0) that the owner must
  seed, e.g. ``nnx.reseed(model, dropout=key, policy='match_shape')``. The tag is always
  ``dropout``, so one ``nnx.reseed(model, dropout=...)`` reaches every stochastic layer.
  """
  key = jax.random.key(0) if rngs is None else rngs.dropout()
  return nnx.RngStream(key, tag="dropout")


def dropout(rate: float, rngs: nnx.Rngs | None) -> nnx.Dropout:
  """Element-wise ``nnx.Dropout`` on a :func:`dropout_stream`; off when ``deterministic``."""
  return nnx.Dropout(rate, rngs=dropout_stream(rngs))


class DropPath(nnx.Module):
  """:func:`drop_path` with a static rate and its own ``dropout`` stream; off when
  ``deterministic``. Rate 0 holds no stream and is the identity.

  With ``rngs``, the stream's key is the ``dropout`` (else ``default``) key of ``rngs.fork()``,
  which draws one key from every stream of ``rngs`` (so the weights a seed gives do not change
  with this layer); with ``rngs=None`` the stream is unseeded (:func:`dropout_stream`).
  """

  def __init__(self, rate: float, *, rngs: nnx.Rngs | None = None):
    if not 0.0 <= rate < 1.0:
      raise ValueError(f"drop-path rate must be in [0, 1), got {rate}")
    self.rate = float(rate)
    self.deterministic = False
    if rate == 0:
      self.rngs = None
    elif rngs is None:
      self.rngs = dropout_stream(None)
    else:
      self.rngs = nnx.RngStream(rngs.fork().dropout.key.get_value(), tag="dropout")

  def _rate(self) -> Array | float:
    return self.rate

  def __call__(self, x: Array, mask_axes: Sequence[int] = (0,)) -> Array:
    if self.rate == 0.0 or self.deterministic:
      return x
    return drop_path(x, self._rate(), self.rngs(), mask_axes)


class DropRate(nnx.Variable):
  """A per-layer drop-path rate held as data, so blocks stacked by ``nnx.vmap`` keep their rate."""


class LayerDropPath(DropPath):
  """:class:`DropPath` whose rate is a per-layer :class:`DropRate` (works under ``nnx.scan``).

  ``max_rate`` (static, shared by every layer of a stack) decides whether the layer draws masks
  at all; ``rate`` (data) is this layer's rate, e.g. ``linspace(0, max_rate, depth)[i]``.
  """

  def __init__(self, rate: float | Array, max_rate: float, *, rngs: nnx.Rngs | None = None):
    super().__init__(max_rate, rngs=rngs)
    self.layer_rate = DropRate(jnp.asarray(rate, jnp.float32))

  def _rate(self) -> Array:
    return self.layer_rate[...]


def attention(q: Array, k: Array, v: Array, implementation: str | None = "xla") -> Array:
  """Softmax(QK^T/sqrt(d))V through ``jax.nn.dot_product_attention``; layout [B, L, heads, d]."""
  impl = None if implementation in (None, "auto") else implementation
  return jax.nn.dot_product_attention(q, k, v, implementation=impl)


def attention_weights(q: Array, k: Array) -> Array:
  """softmax(QK^T/sqrt(d)) in float32, ``[B, heads, Lq, Lk]`` (inputs [B, L, heads, d]).

  What :func:`attention` computes internally, spelled out for inspection (visualisation); the
  forward pass itself always goes through :func:`attention`.
  """
  scale = q.shape[-1] ** -0.5
  logits = jnp.einsum("bqhd,bkhd->bhqk", q.astype(jnp.float32), k.astype(jnp.float32))
  return jax.nn.softmax(logits * scale, axis=-1)


def constrain(x: Array, names: Sequence[str | None]) -> Array:
  """Sharding constraint by logical axis names; a no-op when no mesh is active."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return x
  rules = dict(core_spmd.get_logical_axis_rules() or ())
  spec = jax.sharding.PartitionSpec(*(rules.get(n) if n is not None else None for n in names))
  return jax.lax.with_sharding_constraint(x, spec)


# Activations tagged with ``jax.ad_checkpoint.checkpoint_name`` (:func:`tag`) for the named
# remat policies below. UniFormerV2: ``attn_qkv`` (the q, k, v projections), ``attn_out`` (the
# attention output before its output projection), ``mlp_hidden`` (the FFN's first matmul, before
# the activation: the 4x-wide tensor). Video-FocalNet: ``modulation_f`` (the linear giving q,
# context and gates, Eq. (4)), ``modulator`` (h(Σ gates · context), the m of Eq. (5)),
# ``mlp_hidden``. A tag is the identity outside ``jax.checkpoint``.
ACTIVATION_NAMES = ("attn_qkv", "attn_out", "mlp_hidden", "modulation_f", "modulator")


def tag(x: Array, name: str) -> Array:
  """Names an activation for the ``save_*`` remat policies (one of :data:`ACTIVATION_NAMES`)."""
  assert name in ACTIVATION_NAMES, name
  return checkpoint_name(x, name)


_REMAT_POLICIES: dict[str, Callable | None] = {
    "none": None,  # no rematerialisation
    "full": jax.checkpoint_policies.nothing_saveable,
    "nothing_saveable": jax.checkpoint_policies.nothing_saveable,
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
    "dots_with_no_batch_dims_saveable": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    "everything_saveable": jax.checkpoint_policies.everything_saveable,
    # By name: keep the attention inputs/outputs, recompute the MLP, norms and elementwise work
    # (the MLP hidden is the largest per-token activation of a ViT block).
    "save_attention": jax.checkpoint_policies.save_only_these_names("attn_qkv", "attn_out"),
    # Every projection output but none of the attention logits/probabilities (the [L, L] tensors
    # that make ``dots_saveable`` memory-hungry at 16-32 frames) nor norms/activations.
    "save_projections": jax.checkpoint_policies.save_only_these_names(*ACTIVATION_NAMES),
}


def remat_policy(name: str) -> Callable | None:
  """Returns the ``jax.checkpoint`` policy for a config name ('none' means no remat)."""
  if name not in _REMAT_POLICIES:
    raise ValueError(f"model.remat_policy={name!r}: expected one of {sorted(_REMAT_POLICIES)}")
  return _REMAT_POLICIES[name]


def maybe_remat(fn: Callable, policy_name: str, static_argnums: tuple[int, ...] = ()) -> Callable:
  """Wraps ``fn(module, *args)`` with ``nnx.remat`` unless ``policy_name == 'none'``."""
  if policy_name == "none":
    return fn
  return nnx.remat(fn, policy=remat_policy(policy_name), static_argnums=static_argnums)
