"""Model checkpoints on disk: an orbax tree of weights plus ``vidjax.json`` describing them.

A checkpoint directory (written by ``python -m convert ...`` or :func:`save`) holds::

    state/          orbax StandardCheckpointer tree {'params': ..., 'batch_stats': ...}
                    (nested pure dicts exactly as ``nnx.to_pure_dict(nnx.state(model, nnx.Param))``)
    vidjax.json     {"format", "model": config.model as a dict, "labels", "source", ...}
    report.json     (conversions only) every key copied / inflated / newly initialised / dropped

    model, info = vidjax.models.load("weights/uniformerv2_b16_k400")   # eval mode
    logits = model(clip)                                               # clip: [B, T, H, W, 3]
    info["labels"][int(logits[0].argmax())]

:func:`restore` fills an abstract state you already have (a training run's ``init_from``).
Writing is atomic: everything goes to ``<path>.tmp-XXXX`` first and is renamed at the end, so a
failed save leaves nothing behind. No torch here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

FORMAT = "vidjax-checkpoint/1"
INFO_FILE = "vidjax.json"
STATE_DIR = "state"
_WEIGHTS = nnx.Any(nnx.Param, nnx.BatchStat)


def _config_dict(model_config: Any) -> dict[str, Any]:
  d = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
  return json.loads(json.dumps(d, default=_json_default))


def _json_default(x: Any) -> Any:
  if isinstance(x, (tuple, set, frozenset)):
    return list(x)
  if isinstance(x, np.generic):
    return x.item()
  raise TypeError(f"not JSON serialisable: {type(x).__name__} {x!r}")


def _config(info: Mapping[str, Any]):
  import ml_collections
  return ml_collections.ConfigDict(info["model"])


def _pure(state: nnx.State) -> dict:
  return nnx.to_pure_dict(state)


def _split_flat(flat: Mapping[tuple, Any], model_config: Any) -> tuple[dict, dict]:
  """Splits a flat ``{path: array}`` mapping into (params, batch_stats) pure dicts, strictly."""
  from vidjax import models
  abs_model = models.abstract(model_config)
  params = nnx.to_flat_state(nnx.state(abs_model, nnx.Param))
  stats = nnx.to_flat_state(nnx.state(abs_model, nnx.BatchStat))
  check_flat(flat, {tuple(p): v.get_value() for p, v in list(params) + list(stats)})

  def nest(items):
    out: dict = {}
    for p, _ in items:
      d = out
      for k in p[:-1]:
        d = d.setdefault(k, {})
      d[p[-1]] = np.asarray(flat[tuple(p)])
    return out

  return nest(params), nest(stats)


def save(path: str, model: nnx.Module | Mapping[tuple, Any], model_config: Any,
         metadata: Mapping[str, Any] | None = None, *, overwrite: bool = False,
         extra_files: Mapping[str, Any] | None = None) -> str:
  """Writes ``model`` (a module or a flat ``{nnx path: array}`` dict) + ``vidjax.json`` to ``path``.

  ``model_config`` is ``config.model`` (ConfigDict or dict, with ``name``); ``metadata`` (source,
  layout, labels, ...) is merged into ``vidjax.json``; ``extra_files`` maps file names to
  JSON-serialisable objects written beside it (e.g. ``report.json``). Returns the absolute path.
  """
  import orbax.checkpoint as ocp
  path = os.path.abspath(os.fspath(path))
  if os.path.exists(path) and not overwrite:
    raise FileExistsError(f"{path} already exists (pass overwrite=True / --overwrite)")
  if isinstance(model, nnx.Module):
    params, stats = _pure(nnx.state(model, nnx.Param)), _pure(nnx.state(model, nnx.BatchStat))
  else:
    params, stats = _split_flat(model, model_config)
  info = {"format": FORMAT, "model": _config_dict(model_config), "labels": None}
  info.update(json.loads(json.dumps(dict(metadata or {}), default=_json_default)))
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=os.path.basename(path) + ".tmp-", dir=parent)
  try:
    with ocp.StandardCheckpointer() as ckptr:
      ckptr.save(os.path.join(tmp, STATE_DIR), {"params": params, "batch_stats": stats})
      ckptr.wait_until_finished()
    for name, obj in {INFO_FILE: info, **dict(extra_files or {})}.items():
      with open(os.path.join(tmp, name), "w") as f:
        json.dump(obj, f, indent=1, default=_json_default)
        f.write("\n")
    if os.path.exists(path):
      old = tempfile.mkdtemp(prefix=os.path.basename(path) + ".old-", dir=parent)
      os.rename(path, os.path.join(old, "x"))
      os.rename(tmp, path)
      shutil.rmtree(old, ignore_errors=True)
    else:
      os.rename(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return path


def read_info(path: str) -> dict[str, Any]:
  """The ``vidjax.json`` of a checkpoint directory."""
  f = os.path.join(os.fspath(path), INFO_FILE)
  if not os.path.isfile(f):
    raise FileNotFoundError(f"{path}: not a vidjax checkpoint (no {INFO_FILE}); convert PyTorch "
                            "weights with `python -m convert --help`")
  with open(f) as fh:
    info = json.load(fh)
  if info.get("format") != FORMAT:
    raise ValueError(f"{f}: format {info.get('format')!r}, expected {FORMAT!r}")
  return info


def restore(path: str, target: Mapping[str, Any]) -> dict[str, Any]:
  """Restores ``{'params': ..., 'batch_stats': ...}`` pure dicts into ``target``'s structure.

  ``target`` leaves are arrays or ``jax.ShapeDtypeStruct`` (with ``sharding`` to restore sharded);
  e.g. ``{'params': nnx.to_pure_dict(nnx.state(abstract_model, nnx.Param)), 'batch_stats': ...}``.
  """
  import orbax.checkpoint as ocp
  state_dir = os.path.join(os.path.abspath(os.fspath(path)), STATE_DIR)
  with ocp.StandardCheckpointer() as ckptr:
    return ckptr.restore(state_dir, dict(target))


def _with_sharding(tree: Any, mesh: jax.sharding.Mesh | None) -> Any:
  if mesh is None:
    return tree

  def leaf(x):
    # eval_shape under the mesh annotates with the abstract mesh; orbax needs the concrete one.
    sharding = getattr(x, "sharding", None)
    spec = (sharding.spec if isinstance(sharding, jax.sharding.NamedSharding)
            else jax.sharding.PartitionSpec())
    return jax.ShapeDtypeStruct(x.shape, x.dtype,
                                sharding=jax.sharding.NamedSharding(mesh, spec))

  return jax.tree.map(leaf, tree)


def _materialise_rest(config: Any) -> nnx.State:
  """Concrete values for the non-weight variables (RNG streams, per-layer drop-path rates)."""
  from vidjax import models
  return models.initialise(config, nnx.Rngs(0), nnx.Not(_WEIGHTS))[1]


def load(path: str, *, mesh: jax.sharding.Mesh | None = None,
         rules: Sequence[tuple[str, Any]] | None = None) -> tuple[nnx.Module, dict[str, Any]]:
  """Rebuilds the model described by ``vidjax.json`` and restores its weights (eval mode).

  The module is first built abstractly (``nnx.eval_shape``), so weights are allocated once. With
  ``mesh`` (and logical-axis ``rules``) parameters are restored sharded as the model annotates them.
  Returns ``(model, info)``; ``info["labels"]`` holds class names when the converter had them.
  """
  from vidjax import models
  info = read_info(path)
  config = _config(info)
  with contextlib.ExitStack() as stack:
    if mesh is not None:
      stack.enter_context(jax.set_mesh(mesh))
    if rules is not None:
      stack.enter_context(nnx.logical_axis_rules(rules))
    graphdef, params, stats, _ = nnx.split(models.abstract(config), nnx.Param, nnx.BatchStat,
                                              ...)
    target = {"params": _with_sharding(_pure(params), mesh),
              "batch_stats": _with_sharding(_pure(stats), mesh)}
    restored = restore(path, target)
    nnx.replace_by_pure_dict(params, restored["params"])
    nnx.replace_by_pure_dict(stats, restored["batch_stats"])
    model = nnx.merge(graphdef, params, stats, _materialise_rest(config))
  model.eval()
  return model, info


def from_flat(config: Any, flat: Mapping[tuple, Any]) -> nnx.Module:
  """The model of ``config`` holding exactly the weights ``flat`` ({nnx path: array}, every Param
  and BatchStat, strict); built abstractly, so no initialiser runs."""
  from vidjax import models
  graphdef, params, stats, _ = nnx.split(models.abstract(config), nnx.Param, nnx.BatchStat,
                                            ...)
  check_flat(flat, {tuple(p): v.get_value() for p, v in
                     list(nnx.to_flat_state(params)) + list(nnx.to_flat_state(stats))})
  for state in (params, stats):
    items = list(nnx.to_flat_state(state))
    for p, v in items:
      v.set_value(jax.numpy.asarray(flat[tuple(p)], dtype=v.get_value().dtype))
    if state is params:
      params = nnx.from_flat_state(items)
    else:
      stats = nnx.from_flat_state(items)
  return nnx.merge(graphdef, params, stats, _materialise_rest(config))


def check_flat(flat: Mapping[tuple, Any], expected: Mapping[tuple, Any]) -> None:
  missing = sorted(set(expected) - set(flat), key=str)
  extra = sorted(set(flat) - set(expected), key=str)
  bad = [(p, tuple(np.shape(flat[p])), tuple(v.shape)) for p, v in expected.items()
         if p in flat and tuple(np.shape(flat[p])) != tuple(v.shape)]
  if missing or extra or bad:
    raise ValueError("weights do not match the model: "
                     f"missing {missing}, unexpected {extra}, shape (given, model) {bad}")


def flat_weights(model: nnx.Module) -> dict[tuple, np.ndarray]:
  """``{nnx path: numpy array}`` of every Param and BatchStat (the layout tables' Flax side)."""
  return {tuple(p): np.asarray(v.get_value())
          for p, v in nnx.to_flat_state(nnx.state(model, _WEIGHTS))}


def assign_flat(model: nnx.Module, flat: Mapping[tuple, Any]) -> None:
  """Sets every Param / BatchStat of ``model`` from ``flat`` (exact key and shape coverage)."""
  state = nnx.state(model, _WEIGHTS)
  items = {tuple(p): v for p, v in nnx.to_flat_state(state)}
  check_flat(flat, {p: v.get_value() for p, v in items.items()})
  for p, v in items.items():
    old = v.get_value()
    new = np.asarray(flat[p], dtype=old.dtype)
    v.set_value(jax.device_put(new, old.sharding) if isinstance(old, jax.Array) else new)
  nnx.update(model, state)
