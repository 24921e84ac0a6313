"""Training checkpoints (orbax ``CheckpointManager``) and ``init_from``.

A training workdir holds ``checkpoints/<step>/`` with three items written together (atomic: orbax
writes to a temporary directory and renames it once complete, so a ``kill -9`` leaves the previous
step directory intact and at most an ignored temporary one):

    state    TrainState as a dict: step, params, frozen, batch_stats, opt_state, rng
    data     the grain iterator state (``grain.checkpoint.CheckpointSave``), one file per process
    config   the experiment config (JSON)

Saves are asynchronous (device arrays are copied to host before ``save`` returns, so the next
step may donate them); the latest ``keep_checkpoints`` steps plus every ``keep_every_steps``-th
are kept. Restoring takes abstract targets carrying the *current* mesh's shardings, so a run saved
on 8 devices resumes on 4 or 1.

``read_weights(path)`` reads the weights of either a converted checkpoint (``python -m convert``
output, ``vidjax.models.save``) or a training workdir (latest step) as ``{nnx path: array}``;
:func:`init_weights` maps them onto a new model (``config.init_from``), strictly, with the head
kept, re-initialised or selected by a label map.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

import grain
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from vidjax import models
from vidjax.models import checkpoint as model_checkpoint

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.json"


def _json(config: Any) -> dict:
  d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  return json.loads(json.dumps(d, default=lambda x: list(x) if isinstance(x, (tuple, set))
                               else x.item() if isinstance(x, np.generic) else str(x)))


class Checkpointer:
  """``save(step, state, data_iter)`` / ``restore(step, abstract_state, data_iter)`` of one run."""

  def __init__(self, workdir: str, config: Any):
    policies = [ocp.checkpoint_managers.LatestN(max(int(config.keep_checkpoints), 1))]
    if config.keep_every_steps > 0:
      policies.append(ocp.checkpoint_managers.EveryNSteps(int(config.keep_every_steps)))
    self.directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
    self.config = _json(config)
    self.manager = ocp.CheckpointManager(
        self.directory, item_names=("state", "data", "config"),
        options=ocp.CheckpointManagerOptions(
            enable_async_checkpointing=bool(config.async_checkpoints),
            preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
            cleanup_tmp_directories=True, create=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, data_iter: Any) -> None:
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(_as_dict(state)),
        data=grain.checkpoint.CheckpointSave(data_iter),
        config=ocp.args.JsonSave(self.config)), force=True)

  def restore(self, step: int, abstract_state: Any, data_iter: Any) -> dict:
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(_as_dict(abstract_state)),
        data=grain.checkpoint.CheckpointRestore(data_iter)))
    return restored["state"]

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def _as_dict(state: Any) -> dict:
  return {k: getattr(state, k) for k in ("step", "params", "frozen", "batch_stats",
                                          "opt_state", "rng")}


# ----------------------------------------------------------------------------------------------
# Reading weights from a converted checkpoint or a training workdir.

def is_workdir(path: str) -> bool:
  return os.path.isdir(os.path.join(path, CHECKPOINT_DIR))


def read_weights(path: str) -> tuple[ml_collections.ConfigDict, dict[tuple, np.ndarray], dict]:
  """(model config, {nnx path: array} of every Param and BatchStat, info) of ``path``.

  ``path`` is a ``python -m convert`` output (``vidjax.json`` + ``state/``) or a training workdir
  (its latest checkpoint); ``info`` carries ``labels`` when known and ``step`` for workdirs.
  """
  path = os.path.abspath(os.fspath(path))
  if not os.path.isdir(path):
    raise FileNotFoundError(f"{path}: no such checkpoint directory")
  if not is_workdir(path):
    model, info = model_checkpoint.load(path)
    return model_checkpoint._config(info), model_checkpoint.flat_weights(model), info
  manager = ocp.CheckpointManager(os.path.join(path, CHECKPOINT_DIR), item_names=("state",
                                                                                  "config"))
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"{path}: training workdir without a complete checkpoint")
  config = ml_collections.ConfigDict(manager.restore(
      step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"])
  from vidjax.train import optim
  abstract = models.abstract(config.model)
  _, params, frozen, stats, _ = nnx.split(abstract, optim.trainable_filter(config.model),
                                          nnx.Param, nnx.BatchStat, ...)
  target = {"params": params, "frozen": frozen, "batch_stats": stats}
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), target)
  restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
      item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
      partial_restore=True)))["state"]
  manager.close()
  flat = {}
  for part in ("params", "frozen", "batch_stats"):
    for p, v in nnx.to_flat_state(restored[part]):
      flat[tuple(p)] = np.asarray(v.get_value() if isinstance(v, nnx.Variable) else v)
  labels = _labels_of(config)
  return config.model, flat, {"labels": labels, "step": int(step), "model": config.model.to_dict()}


def _labels_of(config: Any) -> list[str] | None:
  labels = config.get("labels") if hasattr(config, "get") else None
  return list(labels) if labels else None


# ----------------------------------------------------------------------------------------------
# init_from.

def class_axes(model: nnx.Module) -> dict[tuple, int]:
  """{path: axis} of the classifier's parameters (the axis named ``classes``)."""
  out = {}
  for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param)):
    names = v.get_metadata().get("out_sharding") or ()
    if "classes" in names:
      out[tuple(p)] = len(v.get_value().shape) - len(names) + tuple(names).index("classes")
  return out


def init_weights(init_cfg: Any, target: Mapping[tuple, np.ndarray], source: Mapping[tuple, Any],
                 head_axes: Mapping[tuple, int], source_name: str) -> tuple[dict, dict]:
  """Maps ``source`` weights onto ``target`` (both ``{nnx path: array}``); returns (new, report).

  Every non-head weight must exist in the source with the same shape (else ``ValueError`` naming
  each key and both shapes). The head (``head_axes``): ``keep`` copies it when the class counts
  match and keeps the first rows when the source has more (the official K710 -> K400 rule);
  ``reinit`` keeps the target's fresh initialisation; ``label_map`` selects the source rows listed
  in the JSON file ``init_cfg.label_map`` (one source index per target class).
  """
  mode = init_cfg.head
  if mode not in ("keep", "reinit", "label_map"):
    raise ValueError(f"init_from.head={mode!r}: expected 'keep', 'reinit' or 'label_map'")
  rows = None
  if mode == "label_map":
    if not init_cfg.label_map:
      raise ValueError("init_from.head='label_map' needs init_from.label_map=FILE (a JSON list "
                       "of source head rows, e.g. the authors' label_mixto600.json)")
    with open(init_cfg.label_map) as f:
      rows = np.asarray(json.load(f), dtype=np.int64)
  out, report = {}, {"copied": [], "head": [], "reinitialised": [], "unused": []}
  problems = []
  for key, value in target.items():
    name = ".".join(map(str, key))
    if key in head_axes and mode == "reinit":
      out[key] = value
      report["reinitialised"].append(name)
      continue
    if key not in source:
      problems.append(f"{name}: missing in {source_name}")
      continue
    src = np.asarray(source[key])
    if key in head_axes and src.shape != value.shape:
      axis = head_axes[key]
      n = value.shape[axis]
      if mode == "label_map":
        if rows.shape != (n,) or rows.min() < 0 or rows.max() >= src.shape[axis]:
          problems.append(f"{name}: label map {init_cfg.label_map} has {rows.shape[0]} rows in "
                          f"[{rows.min()}, {rows.max()}]; need {n} rows < {src.shape[axis]}")
          continue
        src = np.take(src, rows, axis=axis)
      elif src.shape[axis] > n:
        src = np.take(src, np.arange(n), axis=axis)
      report["head"].append(f"{name}: {source_name} {tuple(source[key].shape)} -> "
                            f"{tuple(src.shape)} ({mode})")
    if src.shape != tuple(value.shape):
      problems.append(f"{name}: {source_name} has shape {src.shape}, the model {value.shape}")
      continue
    out[key] = src.astype(value.dtype)
    report["copied"].append(name)
  report["unused"] = sorted(".".join(map(str, k)) for k in set(source) - set(target))
  if problems:
    raise ValueError(f"init_from {source_name} does not fit the model ({len(problems)} "
                     "problem(s)):\n  " + "\n  ".join(problems))
  logging.info("init_from %s: %d weights copied, head: %s, re-initialised: %s, unused: %d",
               source_name, len(report["copied"]), report["head"] or mode,
               report["reinitialised"] or "none", len(report["unused"]))
  return out, report
