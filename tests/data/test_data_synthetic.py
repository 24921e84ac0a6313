"""Synthetic motion videos: real mp4s, label only in the motion, CLI writes list files."""

import os

import numpy as np

from vidjax.data import decode, sources, synthetic


def test_motion_classes_differ_by_motion_only():
  rng = np.random.default_rng(0)
  right = synthetic.motion_frames(0, np.random.default_rng(5), 12, 48, 64)
  left = synthetic.motion_frames(1, np.random.default_rng(5), 12, 48, 64)
  np.testing.assert_array_equal(right[0], left[0])  # same first frame for the same seed
  assert not np.array_equal(right[6], left[6])
  rot = synthetic.motion_frames(4, rng, 6, 48, 64)
  assert not np.array_equal(rot[0], rot[5])


def test_cli_writes_decodable_dataset(tmp_path):
  synthetic.main(["--out", str(tmp_path), "--num_per_class", "1", "--num_classes", "3",
                  "--frames", "10", "--height", "32", "--width", "48", "--splits", "train"])
  ann = sources.parse_list_file(str(tmp_path / "train.txt"), str(tmp_path), strict=True,
                                classes=sources.ClassIndex.from_file(str(tmp_path / "classes.txt")))
  assert [r.label for r in ann.records] == [0, 1, 2] and ann.classes.names[:2] == ["right_slow", "left_slow"]
  for r in ann.records:
    assert r.num_frames == 10 and decode.num_video_frames(r.path) == 10
    assert decode.decode_video(r.path, [0, 9]).shape == (2, 32, 48, 3)
  folders = sources.parse_class_folders(str(tmp_path / "train"))
  assert sorted(os.path.basename(r.path) for r in folders.records) == sorted(
      os.path.basename(r.path) for r in ann.records)
