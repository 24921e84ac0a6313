"""Tiny synthetic datasets shared by the data tests (built once per session)."""

import os
import sys
from pathlib import Path

import pytest

from vidjax.data import sources, synthetic

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))


@pytest.fixture(scope="session")
def tiny_videos(tmp_path_factory):
  """12 mp4s (4 classes × 3), 64×48, 5–30 frames (some shorter than an 8-frame clip)."""
  d = str(tmp_path_factory.mktemp("videos"))
  lst = synthetic.write_dataset(d, 3, num_classes=4, num_frames=(5, 30), height=48, width=64,
                                gop=8, seed=1)
  return d, lst


@pytest.fixture(scope="session")
def tiny_prepared(tiny_videos, tmp_path_factory):
  """The same videos as a prepared JPEG-frame dataset (2 shards, fps kept, short side 40)."""
  import prepare_data
  d, lst = tiny_videos
  out = str(tmp_path_factory.mktemp("prepared"))
  prepare_data.prepare(prepare_data.parser().parse_args(
      ["--annotations", lst, "--video_dir", d, "--labels", os.path.join(d, "classes.txt"),
       "--out", out, "--num_shards", "2", "--workers", "0", "--fps", "0", "--short_side", "40"]))
  return out


@pytest.fixture(scope="session")
def file_source(tiny_videos):
  d, lst = tiny_videos
  return sources.VideoFileSource(sources.parse_list_file(lst, d, strict=True).records)
