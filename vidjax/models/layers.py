"""Shared building blocks for both networks.

Conventions (see ../shared/CONVENTIONS.md):
  * LayerNorm eps is 1e-5 (PyTorch) and always computes in float32.
  * Every parameter carries logical axis names (``embed``, ``mlp``, ``heads``, ``conv_in``,
    ``conv_out``, ``classes``, ``norm``...). A mesh maps them onto physical axes through
    ``nnx.logical_axis_rules``; without an active mesh they are plain metadata.
  * Activations are constrained with :func:`constrain` at block boundaries using the logical names
    ``act_batch``, ``act_time``, ``act_len``, ``act_embed``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.core import spmd as core_spmd

Array = jax.Array
Initializer = nnx.initializers.Initializer

LN_EPS = 1e-5

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def dtype_from_name(name: str) -> jnp.dtype:
  """Maps a config string ('float32', 'bfloat16', 'float16') to a dtype."""
  if name not in _DTYPES:
    raise ValueError(f"unknown dtype {name!r}: expected one of {sorted(_DTYPES)}")
  return _DTYPES[name]


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


class DropPath(nnx.Module):
  """:func:`drop_path` with a static rate and its own RNG stream; off when ``deterministic``."""

  def __init__(self, rate: float, *, rngs: nnx.Rngs | None = None):
    if not 0.0 <= rate < 1.0:
      raise ValueError(f"drop-path rate must be in [0, 1), got {rate}")
    self.rate = float(rate)
    self.deterministic = False
    self.rngs = rngs.fork() if (rngs is not None and rate > 0) else None

  def __call__(self, x: Array, mask_axes: Sequence[int] = (0,)) -> Array:
    if self.rate == 0.0 or self.deterministic:
      return x
    return drop_path(x, self.rate, self.rngs.dropout(), mask_axes)


def attention(q: Array, k: Array, v: Array, implementation: str | None = "xla") -> Array:
  """Softmax(QK^T/sqrt(d))V through ``jax.nn.dot_product_attention``; layout [B, L, heads, d]."""
  impl = None if implementation in (None, "auto") else implementation
  return jax.nn.dot_product_attention(q, k, v, implementation=impl)


def constrain(x: Array, names: Sequence[str | None]) -> Array:
  """Sharding constraint by logical axis names; a no-op when no mesh is active."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return x
  rules = dict(core_spmd.get_logical_axis_rules() or ())
  spec = jax.sharding.PartitionSpec(*(rules.get(n) if n is not None else None for n in names))
  return jax.lax.with_sharding_constraint(x, spec)


_REMAT_POLICIES: dict[str, Callable | None] = {
    "none": None,  # no rematerialisation
    "full": jax.checkpoint_policies.nothing_saveable,
    "nothing_saveable": jax.checkpoint_policies.nothing_saveable,
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
    "dots_with_no_batch_dims_saveable": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    "everything_saveable": jax.checkpoint_policies.everything_saveable,
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
