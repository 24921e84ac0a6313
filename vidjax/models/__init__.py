"""Model construction: ``create(config.model, rngs=...)`` builds either network from a ConfigDict.

    import ml_collections, jax.numpy as jnp
    from flax import nnx
    from vidjax import models
    model = models.create(config.model, rngs=nnx.Rngs(0))   # nnx.Module: [B, T, H, W, 3] -> logits
    model.eval()                                            # dropout/drop-path off, BN running stats
    logits = model(clip)

``abstract(config.model)`` builds the same module with ShapeDtypeStructs instead of weights.
Parameters carry logical axis names; inside ``jax.set_mesh(mesh)`` plus
``nnx.logical_axis_rules(rules)`` they are created sharded, otherwise they are plain arrays.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import jax
from flax import nnx

from vidjax.models import uniformerv2, video_focalnet

# The one table of architectures: config.model.name -> module with `Config`, `config_from_dict`
# and the network class `Model`.
ARCHITECTURES = {"uniformerv2": uniformerv2, "video_focalnet": video_focalnet}


def _as_dict(config: Any) -> dict[str, Any]:
  if hasattr(config, "to_dict"):
    return config.to_dict()
  if isinstance(config, Mapping):
    return dict(config)
  raise TypeError(f"model config must be a ConfigDict or mapping, got {type(config).__name__}")


def model_config(config: Any):
  """Validates ``config.model`` and returns the architecture's frozen dataclass config."""
  d = _as_dict(config)
  name = d.pop("name", None)
  if name not in ARCHITECTURES:
    raise ValueError(f"model.name={name!r}: expected one of {sorted(ARCHITECTURES)}")
  return ARCHITECTURES[name].config_from_dict(d)


def _sharding_context():
  # Without a mesh, logical axis names stay metadata (NNX would otherwise refuse to create
  # annotated variables eagerly); with a mesh the caller's rules shard them at creation.
  if jax.sharding.get_abstract_mesh().empty:
    return nnx.use_eager_sharding(False)
  return contextlib.nullcontext()


def create(config: Any, *, rngs: nnx.Rngs) -> nnx.Module:
  """Builds the network described by ``config`` (``config.model`` of an experiment config)."""
  cfg = model_config(config)
  arch = ARCHITECTURES[_as_dict(config)["name"]]
  with _sharding_context():
    return arch.Model(cfg, rngs=rngs)


def abstract(config: Any) -> nnx.Module:
  """The same module as :func:`create` with ``jax.ShapeDtypeStruct`` leaves (no allocation)."""
  with _sharding_context():
    return nnx.eval_shape(lambda: create(config, rngs=nnx.Rngs(0)))
