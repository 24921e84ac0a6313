r"""Prints a table of a model (parameters per stage, GMACs per view) without materialising weights.

    python experiments/summary.py --config configs/uniformerv2/k400_b16_8x224.py
    python experiments/summary.py --config configs/video_focalnet/k400_tiny.py --config.model.num_classes=10

The model is built abstractly (``nnx.eval_shape``); GMACs come from XLA's cost analysis of the
lowered eval-mode forward pass for one view (batch 1): multiply-accumulates = flops / 2, the unit
the papers call "GFLOPs". The last line is a JSON object
``{"params": int, "gmacs_per_view": float, "logits_shape": [...]}``.
"""

from __future__ import annotations

import collections
import json
import math
import sys

import jax
import jax.numpy as jnp
from absl import app, logging
from flax import nnx

from vidjax import cli, models

_CONFIG = cli.define_config(lock_config=True)


def param_table(model: nnx.Module) -> tuple[dict[str, int], int]:
  """Parameter count per stage and in total (nnx.Param only; BatchNorm statistics excluded).

  A stage is a top-level attribute; a list keeps its index (FocalNet ``layers.0``), and an
  attribute holding most of the model is split by its children (UniFormerV2 ``transformer.dec``).
  """
  sizes = [(path, math.prod(var.get_value().shape))
           for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param))]
  total = sum(n for _, n in sizes)
  top = collections.Counter()
  for path, n in sizes:
    top[path[0]] += n

  def stage(path: tuple) -> str:
    if len(path) > 2 and (isinstance(path[1], int) or top[path[0]] > total / 2):
      return f"{path[0]}.{path[1]}"
    return str(path[0])

  per_stage: dict[str, int] = collections.OrderedDict()
  for path, n in sizes:
    per_stage[stage(path)] = per_stage.get(stage(path), 0) + n
  return per_stage, total


def input_spec(model_cfg) -> jax.ShapeDtypeStruct:
  """One view: [1, T, H, W, 3] float32."""
  cfg = models.model_config(model_cfg)
  return jax.ShapeDtypeStruct((1, cfg.num_frames, cfg.image_size, cfg.image_size, 3), jnp.float32)


def forward_cost(model_cfg) -> tuple[float, tuple[int, ...]]:
  """(GMACs per view, logits shape) of the eval-mode forward pass, from XLA cost analysis.

  Depthwise convolutions are counted as convolutions (``depthwise_impl='conv'``, as the papers'
  counters do), whatever the backend would run ('auto' is the shift form on CPU).
  """
  model_cfg = dict(model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else model_cfg,
                   depthwise_impl="conv")
  model = models.abstract(model_cfg)
  model.eval()
  graphdef, state = nnx.split(model)
  x = input_spec(model_cfg)

  def forward(state, x):
    return nnx.merge(graphdef, state)(x)

  logits = jax.eval_shape(forward, state, x)
  cost = jax.jit(forward).lower(state, x).cost_analysis()
  if isinstance(cost, (list, tuple)):  # older jax returns one dict per computation
    cost = cost[0]
  return float(cost["flops"]) / 2e9, tuple(logits.shape)


def main(argv) -> None:
  del argv
  logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  if config is None:
    raise app.UsageError("--config is required, e.g. --config configs/uniformerv2/k400_b16_8x224.py")
  model = models.abstract(config.model)
  per_stage, total = param_table(model)
  gmacs, logits_shape = forward_cost(config.model)

  width = max(len(k) for k in per_stage) + 2
  print(f"{config.model.name}: {sys.argv[sys.argv.index('--config') + 1] if '--config' in sys.argv else ''}")
  print(f"{'stage':<{width}}{'params':>16}{'share':>9}")
  print("-" * (width + 25))
  for name, n in per_stage.items():
    print(f"{name:<{width}}{n:>16,}{100 * n / total:>8.2f}%")
  print("-" * (width + 25))
  print(f"{'total':<{width}}{total:>16,}")
  spec = input_spec(config.model)
  print(f"input per view {list(spec.shape)}  ->  logits {list(logits_shape)};  {gmacs:.2f} GMACs per view")
  print(json.dumps({"params": total, "gmacs_per_view": round(gmacs, 3), "logits_shape": list(logits_shape)}))


if __name__ == "__main__":
  cli.run(main, errors=(ValueError, KeyError))
