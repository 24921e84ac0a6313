"""Frame-index sampling (pure numpy): sparse TSN segments and dense T×τ clips.

Formulas follow the official code (UniFormerV2 `decoder.get_seq_frames`, SlowFast
`get_start_end_idx`). Rounding is numpy's (round-half-to-even) as in the official code.
"""

from __future__ import annotations

import numpy as np


def _check(num_video_frames: int, num_frames: int) -> None:
  if num_video_frames < 1:
    raise ValueError(f"video has {num_video_frames} frames; need at least 1")
  if num_frames < 1:
    raise ValueError(f"num_frames={num_frames}: must be >= 1")


def tsn_train_indices(n: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
  """One random frame per segment: seg=(n-1)/T, i-th index ~ U{round(seg·i), …, round(seg·(i+1))}."""
  _check(n, num_frames)
  seg = (n - 1) / num_frames
  i = np.arange(num_frames)
  lo = np.round(seg * i).astype(np.int64)
  hi = np.round(seg * (i + 1)).astype(np.int64)
  return lo + rng.integers(0, hi - lo + 1)  # inclusive like python's random.randint


def tsn_eval_indices(n: int, num_frames: int, clip: int, num_clips: int) -> np.ndarray:
  """Test clip k of K: round(seg·i) + int(seg/(K+1)·(k+1))."""
  _check(n, num_frames)
  if not 0 <= clip < num_clips:
    raise ValueError(f"clip={clip} outside [0, {num_clips})")
  seg = (n - 1) / num_frames
  i = np.arange(num_frames)
  return np.round(seg * i).astype(np.int64) + int(seg / (num_clips + 1) * (clip + 1))


def dense_indices(n: int, num_frames: int, stride: int, start: int) -> np.ndarray:
  """T frames τ apart from `start`, clamped to the last frame (short videos repeat it)."""
  _check(n, num_frames)
  return np.minimum(start + stride * np.arange(num_frames), n - 1).astype(np.int64)


def dense_train_indices(n: int, num_frames: int, stride: int,
                        rng: np.random.Generator) -> np.ndarray:
  """Dense clip with a uniformly random start in [0, max(n - span, 0)], span=(T-1)·τ+1."""
  delta = max(n - ((num_frames - 1) * stride + 1), 0)
  return dense_indices(n, num_frames, stride, int(rng.integers(0, delta + 1)))


def dense_eval_indices(n: int, num_frames: int, stride: int, clip: int,
                       num_clips: int) -> np.ndarray:
  """K uniformly spaced dense clips: start = k·⌊Δ/(K-1)⌋ (K>1) or ⌊Δ/2⌋ (K=1) (SlowFast offsets)."""
  if not 0 <= clip < num_clips:
    raise ValueError(f"clip={clip} outside [0, {num_clips})")
  delta = max(n - ((num_frames - 1) * stride + 1), 0)
  start = delta // 2 if num_clips == 1 else clip * (delta // (num_clips - 1))
  return dense_indices(n, num_frames, stride, start)


def train_indices(kind: str, n: int, num_frames: int, stride: int,
                  rng: np.random.Generator) -> np.ndarray:
  """Dispatch on `sampling` = 'tsn' | 'dense'."""
  if kind == "tsn":
    return tsn_train_indices(n, num_frames, rng)
  if kind == "dense":
    return dense_train_indices(n, num_frames, stride, rng)
  raise ValueError(f"data.sampling={kind!r}: expected 'tsn' or 'dense'")


def eval_indices(kind: str, n: int, num_frames: int, stride: int, clip: int,
                 num_clips: int) -> np.ndarray:
  """Dispatch on `sampling` = 'tsn' | 'dense'."""
  if kind == "tsn":
    return tsn_eval_indices(n, num_frames, clip, num_clips)
  if kind == "dense":
    return dense_eval_indices(n, num_frames, stride, clip, num_clips)
  raise ValueError(f"data.sampling={kind!r}: expected 'tsn' or 'dense'")
