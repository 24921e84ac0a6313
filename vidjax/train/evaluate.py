"""Multi-view evaluation (both papers' test protocol) and its metrics.

Each video is cut into ``num_clips`` temporal clips x ``num_crops`` spatial crops (views, the
pipeline's ``eval_dataset``); the score of a video is the sum of its views' softmax
(``TEST.ADD_SOFTMAX`` + ``ENSEMBLE_METHOD sum`` in UniFormerV2, the sum of per-view softmax in
Video-FocalNet). Every process evaluates its slice of the split; the per-video results are
gathered once at the end; padding (``valid=False``) and videos that could not be decoded
(``failed=True``, never substituted) are excluded from every metric, the latter listed by path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from vidjax.data import pipeline

RESULT_KEYS = ("label", "valid", "index", "failed")


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
             workers: int | None = None) -> dict[str, Any]:
  """One pass over ``source`` with the views of ``data_cfg.eval``; the metrics plus timing."""
  start = time.time()
  ds = pipeline.eval_dataset(data_cfg, source, workers=workers)
  it = iter(ds)
  try:
    results = run(eval_step, weights, it, sharding)
  finally:
    pipeline.close(it)
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
