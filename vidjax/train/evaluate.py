"""Multi-view evaluation (both papers' test protocol) and its metrics.

Each video is cut into ``num_clips`` temporal clips x ``num_crops`` spatial crops (views, the
pipeline's ``eval_dataset``); the score of a video is the sum of its views' softmax
(``TEST.ADD_SOFTMAX`` + ``ENSEMBLE_METHOD sum`` in UniFormerV2, the sum of per-view softmax in
Video-FocalNet). Every process evaluates its slice of the split; the per-video results are
gathered once at the end; padding (``valid=False``) and videos that could not be decoded
(``failed=True``, never substituted) are excluded from every metric, the latter listed by path.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils

from vidjax.data import pipeline
from vidjax.train import mesh as mesh_lib
from vidjax.train import step as step_lib

RESULT_KEYS = ("label", "valid", "index", "failed")


@dataclasses.dataclass
class Evaluator:
  """What evaluating ``config.model`` on a mesh needs: static model, shardings, jitted step."""
  config: Any
  mesh: jax.sharding.Mesh
  rules: tuple
  model: step_lib.Model
  abstract_weights: tuple
  weight_shardings: tuple
  batch_sharding: Any
  eval_step: Callable


def jit_eval_step(model: step_lib.Model, data_cfg: Any, compute_dtype: Any,
                  weight_shardings: tuple, batch_sharding: Any) -> Callable:
  return jax.jit(step_lib.make_eval_step(model, data_cfg, compute_dtype),
                 in_shardings=(weight_shardings, batch_sharding))


def eval_batch_size(config: Any, mesh: jax.sharding.Mesh) -> int:
  """``data.eval_batch_size`` (global videos), checked against the mesh; -1 = one per device."""
  n = mesh_lib.batch_devices(mesh)
  b = int(config.data.eval_batch_size)
  if b <= 0:
    return n
  if b % n:
    raise ValueError(f"data.eval_batch_size={b} is not divisible by the {n} batch devices "
                     f"(mesh axes {mesh_lib.batch_axes(mesh)}); use a multiple, or -1")
  return b


def evaluator(config: Any, mesh: jax.sharding.Mesh) -> Evaluator:
  """An :class:`Evaluator` for ``config`` (no optimizer, nothing allocated)."""
  rules = tuple((str(k), v if v is None or isinstance(v, str) else tuple(v))
                for k, v in config.sharding_rules)
  static, *abstract = step_lib.static_model(config.model)
  shardings = tuple(mesh_lib.state_shardings(a, rules, mesh) for a in abstract)
  bsh = mesh_lib.batch_sharding(mesh)
  step = jit_eval_step(static, config.data, step_lib.compute_dtype(config.model), shardings, bsh)
  return Evaluator(config, mesh, rules, static, tuple(abstract), shardings, bsh, step)


def place_weights(ev: Evaluator, flat: dict[tuple, np.ndarray], source: str) -> tuple:
  """(params, frozen, batch_stats) on the mesh from ``{nnx path: array}``, strictly."""
  from vidjax.models import checkpoint as model_checkpoint
  expected = {tuple(p): v.get_value() for a in ev.abstract_weights
              for p, v in nnx.to_flat_state(a)}
  try:
    model_checkpoint.check_flat(flat, expected)
  except ValueError as e:
    raise ValueError(f"{source}: {e}") from None
  parts = []
  for a in ev.abstract_weights:
    items = [(p, v.replace(np.asarray(flat[tuple(p)], dtype=v.get_value().dtype)))
             for p, v in nnx.to_flat_state(a)]
    parts.append(nnx.from_flat_state(items))
  return tuple(mesh_lib.put_global(p, s) for p, s in zip(parts, ev.weight_shardings))


def run(eval_step: Callable, weights: Any, batches: Iterable[dict], sharding: Any,
        progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
  """Applies the jitted ``eval_step`` to every batch; returns gathered per-video numpy arrays."""
  outs = []
  for i, batch in enumerate(batches):
    keys = ("clip",) + tuple(k for k in RESULT_KEYS if k in batch)
    outs.append(eval_step(weights, pipeline.to_global({k: batch[k] for k in keys}, sharding)))
    if progress is not None:
      progress(i + 1)
  if not outs:
    raise ValueError("the evaluation split produced no batches")
  merged = {k: jnp.concatenate([o[k] for o in outs]) for k in outs[0]}
  if jax.process_count() > 1:
    return {k: np.asarray(v) for k, v in multihost_utils.process_allgather(merged,
                                                                           tiled=True).items()}
  return {k: np.asarray(v) for k, v in merged.items()}


def summarize(results: dict[str, np.ndarray], num_classes: int) -> dict[str, Any]:
  """top-1, top-5, mean per-class accuracy and the confusion matrix over valid, decoded videos."""
  # Padding and undecodable videos both have valid=False; the latter also failed=True.
  valid = results["valid"].astype(bool)
  failed = results.get("failed", np.zeros_like(valid)).astype(bool)
  keep = valid & ~failed
  labels, top5 = results["label"][keep], results["top5"][keep]
  n = int(keep.sum())
  if n == 0:
    raise ValueError("no decodable video in the evaluation split")
  pred = top5[:, 0]
  correct1 = pred == labels
  correct5 = (top5 == labels[:, None]).any(axis=1)
  confusion = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(confusion, (labels, pred), 1)
  per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
  present = confusion.sum(1) > 0
  return {"num_videos": n, "top1": float(correct1.mean()), "top5": float(correct5.mean()),
          "mean_class_accuracy": float(per_class[present].mean()),
          "num_failed": int(failed.sum()),
          "failed_indices": [int(i) for i in results["index"][failed]],
          "confusion": confusion}


def evaluate(eval_step: Callable, weights: Any, data_cfg: Any, source: Any, sharding: Any,
             num_classes: int, *, log: Callable[[str], None] | None = None,
             workers: int | None = None, progress: bool = False) -> dict[str, Any]:
  """One pass over ``source`` with the views of ``data_cfg.eval``; the metrics plus timing.

  ``progress``: a tqdm bar with ETA over the batches (process 0 only).
  """
  start = time.time()
  ds = pipeline.eval_dataset(data_cfg, source, workers=workers)
  it = iter(ds)
  bar = None
  if progress and jax.process_index() == 0:
    import tqdm
    bar = tqdm.tqdm(total=math.ceil(len(source) / data_cfg.eval_batch_size), unit="batch",
                    desc="eval", file=sys.stderr)
  try:
    results = run(eval_step, weights, it, sharding,
                  progress=(lambda i: bar.update(1)) if bar is not None else None)
  finally:
    pipeline.close(it)
    if bar is not None:
      bar.close()
  out = summarize(results, num_classes)
  out["failed_paths"] = [source.describe(i) if hasattr(source, "describe") else str(i)
                         for i in out.pop("failed_indices")]
  out["views_per_video"] = int(data_cfg.eval.num_clips * data_cfg.eval.num_crops)
  out["wall_s"] = time.time() - start
  if log is not None:
    log(f"eval: {out['num_videos']} videos x {out['views_per_video']} views, top-1 "
        f"{out['top1']:.4f}, top-5 {out['top5']:.4f}, {out['num_failed']} undecodable, "
        f"{out['wall_s']:.1f} s")
  return out


# ---------------------------------------------------------------------------------------------
# Checkpoints: experiments/evaluate.py and the demo.

def class_names(info: dict, config) -> list[str]:
  """Names from the checkpoint (converted with --labels, or a workdir's data labels file)."""
  if info.get("labels"):
    return list(info["labels"])
  labels = config.data.get("labels", "")
  if labels and os.path.isfile(labels):
    from vidjax.data import sources
    return sources.ClassIndex.from_file(labels).names
  return [str(i) for i in range(config.model.num_classes)]


def confusion_png(confusion, names: list[str], path: str, title: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  n = len(names)
  fig, ax = plt.subplots(figsize=(2 + 0.3 * n, 2 + 0.3 * n))
  ax.imshow(confusion, cmap="Blues")
  ax.set_xticks(range(n), names, rotation=90, fontsize=7)
  ax.set_yticks(range(n), names, fontsize=7)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


# Model fields a user may change when evaluating (how, not what, is computed); every other field
# comes from the checkpoint, whose weights define the architecture.
EXECUTION_FIELDS = ("dtype", "param_dtype", "attention_impl", "depthwise_impl", "remat_policy")


def checkpoint_model(config, saved_model, checkpoint: str, log=print):
  """A copy of ``config`` whose model is the checkpoint's (``saved_model``) but for
  :data:`EXECUTION_FIELDS`: a workdir trained with ``--config.model.x=y`` evaluates with its
  config file alone, and a converted checkpoint's head decides the class count (e.g. a zoo file
  fine-tuned on another label set). Each field taken from the checkpoint is logged."""
  from vidjax import models
  config = ml_collections.ConfigDict(config.to_dict())
  given = dataclasses.asdict(models.model_config(config.model))
  saved = dataclasses.asdict(models.model_config(saved_model))
  if config.model.get("name") != saved_model.get("name"):
    raise ValueError(f"{checkpoint} holds a {saved_model.get('name')} model but the config "
                     f"builds model.name={config.model.get('name')!r}")
  for k, v in saved.items():
    if k in EXECUTION_FIELDS or given.get(k) == v:
      continue
    if log is not None:
      log(f"note: model.{k}={given.get(k)!r} -> {v!r} (from {checkpoint})")
    config.model[k] = saved_model[k] if k in saved_model else v
  if config.model.num_classes != config.data.num_classes:
    config.data.num_classes = config.model.num_classes
  return config


def evaluate_checkpoint(config, checkpoint: str, split: str = "val", out: str | None = None,
                        log=print) -> dict:
  """Evaluates ``checkpoint`` on the eval split of ``config.data``; returns the summary."""
  from vidjax.train import checkpoint as ckpt_lib
  from vidjax.train import loop

  saved_model, flat, info = ckpt_lib.read_weights(checkpoint)
  config = loop.resolve_config(checkpoint_model(config, saved_model, checkpoint, log))
  mesh = mesh_lib.make_mesh(config.mesh)
  config.data.eval_batch_size = eval_batch_size(config, mesh)
  ev = evaluator(config, mesh)
  weights = place_weights(ev, flat, checkpoint)
  source = pipeline.make_source(config.data, "eval")
  with jax.set_mesh(mesh), nnx.logical_axis_rules(ev.rules):
    result = evaluate(ev.eval_step, weights, config.data, source, ev.batch_sharding,
                      config.model.num_classes, log=log, progress=True)
  names = class_names(info, config)
  confusion = result.pop("confusion")
  summary = {"checkpoint": os.path.abspath(checkpoint), "split": split,
             **{k: result[k] for k in ("num_videos", "top1", "top5", "mean_class_accuracy",
                                       "num_failed", "failed_paths", "views_per_video",
                                       "wall_s")}}
  out = out or checkpoint
  if jax.process_index() == 0:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"eval_{split}.json"), "w") as f:
      json.dump({**summary, "classes": names, "confusion": confusion.tolist()}, f, indent=1)
    if len(names) <= 50:
      png = os.path.join(out, f"eval_{split}_confusion.png")
      confusion_png(confusion, names, png, f"{os.path.basename(os.path.normpath(checkpoint))} "
                    f"{split}: top-1 {summary['top1']:.3f}")
      summary["confusion_png"] = png
  return summary
