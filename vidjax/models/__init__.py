"""Model construction: ``create(config.model, rngs=...)`` builds either network from a ConfigDict.

    import ml_collections, jax.numpy as jnp
    from flax import nnx
    from vidjax import models
    model = models.create(config.model, rngs=nnx.Rngs(0))   # nnx.Module: [B, T, H, W, 3] -> logits
    model.eval()                                            # dropout/drop-path off, BN running stats
    logits = model(clip)

``abstract(config.model)`` builds the same module with ShapeDtypeStructs instead of weights.
``load(path)`` rebuilds a saved / converted model (``python -m convert ...``) with its weights:
``model, info = models.load("weights/uniformerv2_b16_k400")`` (eval mode; ``info["labels"]``).
Parameters carry logical axis names; inside ``jax.set_mesh(mesh)`` plus
``nnx.logical_axis_rules(rules)`` they are created sharded, otherwise they are plain arrays.
"""

from __future__ import annotations

import contextlib
import dataclasses
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


# Initialisers are cheap arithmetic: compiling them at XLA's lowest optimisation level is ~10x
# faster on CPU than the default and gives the same values.
_INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0,
                          "xla_llvm_disable_expensive_passes": True}


def _builder(config: Any):
  """Validates the config once and returns ``rngs -> Model`` (construction, not initialisation)."""
  cfg = model_config(config)
  arch = ARCHITECTURES[_as_dict(config)["name"]]
  return lambda rngs: arch.Model(cfg, rngs=rngs)


def initialise(config: Any, rngs: nnx.Rngs, filter_: Any = ...) -> tuple[nnx.GraphDef, nnx.State]:
  """(graphdef, state selected by ``filter_``) of a new model, all initialisers in one program.

  Eager NNX compiles one op per parameter (tens of seconds on CPU); here XLA compiles a single
  program at its lowest optimisation level, and drops the initialisers of variables that
  ``filter_`` leaves out. Values equal eager construction with the same ``rngs``, whose streams
  advance as usual.
  """
  build = _builder(config)
  rngs_def, rngs_state = nnx.split(rngs)
  traced = []

  def init(rngs_state):
    streams = _ref_streams(nnx.merge(rngs_def, rngs_state))
    graphdef, state = nnx.split(build(streams))
    traced.append(graphdef)
    state = nnx.filter_state(state, filter_) if filter_ is not ... else state
    return state, nnx.state(nnx.with_vars(streams, ref=False))

  with _sharding_context():
    compiled = jax.jit(init).lower(rngs_state).compile(compiler_options=_INIT_COMPILER_OPTIONS)
  state, rngs_state = compiled(rngs_state)
  nnx.update(rngs, rngs_state)
  return traced[0], state


def create(config: Any, *, rngs: nnx.Rngs) -> nnx.Module:
  """Builds the network described by ``config`` (``config.model`` of an experiment config).

  Under ``jax.set_mesh(mesh)`` + ``nnx.logical_axis_rules(rules)`` parameters are created
  directly with their shardings. See :func:`initialise` for how initialisation runs.
  """
  return nnx.merge(*initialise(config, rngs))


def _ref_streams(rngs: nnx.Rngs) -> nnx.Rngs:
  """The caller's streams as JAX refs (``nnx.with_vars(..., ref=True)``) while a model is traced.

  Every key drawn while tracing updates the stream's counter. On a plain Variable that update
  (``count[...] += 1``) compares the shardings of two tracers, and each comparison makes JAX
  walk every traced operation so far to phrase an error message it then discards: quadratic in
  model size. A ref is updated in place instead; the keys and counts drawn are the same.
  """
  return nnx.with_vars(rngs, ref=True)


def abstract(config: Any) -> nnx.Module:
  """The same module as :func:`create` with ``jax.ShapeDtypeStruct`` leaves (no allocation)."""
  build = _builder(config)
  with _sharding_context():
    return nnx.eval_shape(lambda: build(_ref_streams(nnx.Rngs(0))))


def fill_rest(model: nnx.Module, seed: int = 0) -> nnx.Module:
  """Makes the non-weight variables of ``model`` (RNG streams, per-layer drop-path rates) concrete,
  in place, as :func:`create` with ``nnx.Rngs(seed)`` would hold them; returns ``model``.

  For a :func:`abstract` model whose weights the caller sets itself (tests, converters).
  """
  name = next(n for n, arch in ARCHITECTURES.items() if isinstance(model, arch.Model))
  config = {"name": name, **dataclasses.asdict(model.cfg)}
  weights = nnx.Any(nnx.Param, nnx.BatchStat)
  nnx.update(model, initialise(config, nnx.Rngs(seed), nnx.Not(weights))[1])
  return model


from vidjax.models.checkpoint import load, save  # noqa: E402
