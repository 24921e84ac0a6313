"""Exact frame indices of the TSN and dense protocols, including videos shorter than the clip."""

import numpy as np
import pytest

from vidjax.data import sampling


def test_tsn_train_segments_inclusive_bounds():
  # n=100, T=8: seg=99/8=12.375; bounds round(seg*i) with numpy's half-to-even rounding.
  lo = [0, 12, 25, 37, 50, 62, 74, 87]
  hi = [12, 25, 37, 50, 62, 74, 87, 99]
  rng = np.random.default_rng(0)
  draws = np.stack([sampling.tsn_train_indices(100, 8, rng) for _ in range(2000)])
  np.testing.assert_array_equal(draws.min(0), lo)  # randint is inclusive at both ends
  np.testing.assert_array_equal(draws.max(0), hi)


def test_tsn_eval_indices_exact():
  # offset int(seg/(K+1)*(k+1)) with seg=12.375, K=4: 2, 4, 7, 9.
  base = np.array([0, 12, 25, 37, 50, 62, 74, 87])
  for k, off in enumerate([2, 4, 7, 9]):
    np.testing.assert_array_equal(sampling.tsn_eval_indices(100, 8, k, 4), base + off)


def test_tsn_short_video_repeats_frames():
  # n=5 < T=8: seg=0.5, round(0.5*i) = [0,0,1,2,2,2,3,4] (half to even), all inside [0, 4].
  np.testing.assert_array_equal(sampling.tsn_eval_indices(5, 8, 0, 1), [0, 0, 1, 2, 2, 2, 3, 4])
  rng = np.random.default_rng(1)
  for _ in range(200):
    idx = sampling.tsn_train_indices(5, 8, rng)
    assert idx.min() >= 0 and idx.max() <= 4 and np.all(np.diff(idx) >= -1)
  np.testing.assert_array_equal(sampling.tsn_train_indices(1, 8, rng), np.zeros(8))


def test_dense_eval_uniform_starts():
  # span = 7*4+1 = 29, delta = 71; K=3 starts 0, 35, 70; K=1 start 35.
  for k, start in enumerate([0, 35, 70]):
    np.testing.assert_array_equal(sampling.dense_eval_indices(100, 8, 4, k, 3), start + 4 * np.arange(8))
  np.testing.assert_array_equal(sampling.dense_eval_indices(100, 8, 4, 0, 1), 35 + 4 * np.arange(8))


def test_dense_short_video_clamps_to_last_frame():
  np.testing.assert_array_equal(sampling.dense_eval_indices(10, 8, 4, 0, 1), [0, 4, 8, 9, 9, 9, 9, 9])
  rng = np.random.default_rng(0)
  np.testing.assert_array_equal(sampling.dense_train_indices(10, 8, 4, rng), [0, 4, 8, 9, 9, 9, 9, 9])


def test_dense_train_start_range():
  rng = np.random.default_rng(0)
  starts = np.array([sampling.dense_train_indices(40, 4, 2, rng)[0] for _ in range(1000)])
  assert starts.min() == 0 and starts.max() == 40 - 7  # delta = n - ((T-1)τ+1) inclusive


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="0 frames"):
    sampling.tsn_eval_indices(0, 8, 0, 1)
  with pytest.raises(ValueError, match="sampling"):
    sampling.train_indices("uniform", 10, 8, 1, np.random.default_rng(0))
