"""Run logging: ``metrics.jsonl``, TensorBoard event files (tensorboardX, no TensorFlow), progress.

``metrics.jsonl`` gets one JSON object per logged step, appended across resumes: steps re-run
after a crash appear again, and :func:`read_metrics` keeps the last line per (split, step) and
skips a line cut short by a kill. Train lines carry ``step``, ``loss`` (mean training loss of that
step), ``lr``, ``grad_norm``, ``clips_per_s``, ``step_time_s``, ``data_wait_fraction``,
``num_replaced`` / ``num_blank`` (per log interval); eval lines ``split`` and ``top1``. Only
process 0 writes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

METRICS_FILE = "metrics.jsonl"


class Writer:
  """Appends metric lines to ``workdir/metrics.jsonl`` and ``workdir/tb`` (process 0 only)."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self._file = self._tb = None
    if enabled:
      os.makedirs(workdir, exist_ok=True)
      self._file = open(os.path.join(workdir, METRICS_FILE), "a", buffering=1)
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(os.path.join(workdir, "tb"))

  def write(self, step: int, scalars: Mapping[str, Any], split: str | None = None) -> None:
    if not self.enabled:
      return
    row: dict[str, Any] = {"step": int(step)}
    if split is not None:
      row["split"] = split
    row.update({k: _plain(v) for k, v in scalars.items()})
    self._file.write(json.dumps(row) + "\n")
    prefix = f"{split}/" if split else "train/"
    for k, v in row.items():
      if k not in ("step", "split") and isinstance(v, (int, float)) and math.isfinite(v):
        self._tb.add_scalar(prefix + k, v, int(step))

  def flush(self) -> None:
    if self.enabled:
      self._file.flush()
      self._tb.flush()

  def close(self) -> None:
    if self.enabled:
      self._file.close()
      self._tb.close()


def _plain(v: Any) -> Any:
  if hasattr(v, "item"):
    v = v.item()
  if isinstance(v, float) and not math.isfinite(v):
    return str(v)  # JSON has no NaN / inf
  return v


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """The lines of ``metrics.jsonl``, the last one per (split, step), in step order."""
  path = workdir if workdir.endswith(".jsonl") else os.path.join(workdir, METRICS_FILE)
  last: dict[tuple, dict] = {}
  with open(path) as f:
    for line in f:
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        continue  # a line cut short by kill -9
      last[(row.get("split", "train"), row["step"])] = row
  return sorted(last.values(), key=lambda r: (r["step"], r.get("split", "train")))


def quiet_library_logs() -> None:
  """Keeps orbax's, grain's and jax's INFO chatter out of an absl app's console (warnings and
  errors still show)."""
  import logging

  from absl import logging as absl_logging

  class Filter(logging.Filter):
    def filter(self, record):
      return record.levelno >= logging.WARNING or not any(
          f"/{lib}/" in record.pathname for lib in ("orbax", "grain", "jax"))

  absl_logging.get_absl_handler().addFilter(Filter())


def progress_line(step: int, total: int, scalars: Mapping[str, float], eta_s: float) -> str:
  """One console line: step/total, ETA, loss, lr, clips/s, step time, data-wait fraction."""
  eta = f"{int(eta_s // 3600)}:{int(eta_s % 3600 // 60):02d}:{int(eta_s % 60):02d}"
  return f"step {step}/{total} eta {eta} {progress_postfix(scalars)}"


def progress_postfix(scalars: Mapping[str, float]) -> str:
  """loss, lr, clips/s, step time and data-wait fraction (a tqdm bar shows step/ETA itself)."""
  return (f"loss {scalars['loss']:.4f} lr {scalars['lr']:.3g} "
          f"{scalars['clips_per_s']:.1f} clips/s step {scalars['step_time_s'] * 1000:.0f} ms "
          f"data-wait {100 * scalars['data_wait_fraction']:.0f}%")
