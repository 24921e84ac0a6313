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


def write_video(path: str, frames, codec: str = "libx264", container_options=None,
                fps: int = 25) -> str:
  """`frames` encoded with `codec` (x264 gop 8, or vp9/mpeg4), e.g. faststart mp4 or webm."""
  import av
  with av.open(path, "w", options=container_options or {}) as c:
    s = c.add_stream(codec, rate=fps)
    s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    if codec == "libx264":
      s.options = {"g": "8", "keyint_min": "8", "sc_threshold": "0", "preset": "veryfast"}
    s.codec_context.thread_count = 1
    for f in frames:
      for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
        c.mux(p)
    for p in s.encode():
      c.mux(p)
  return path


def write_audio_only(path: str) -> str:
  """An AAC-only .mp4 (no video stream)."""
  import av
  import numpy as np
  with av.open(path, "w", format="mp4") as c:
    s = c.add_stream("aac", rate=16000)
    s.layout = "mono"
    for k in range(4):
      f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
      f.sample_rate, f.pts = 16000, k * 1024
      for p in s.encode(f):
        c.mux(p)
    for p in s.encode():
      c.mux(p)
  return path


@pytest.fixture(scope="session")
def bad_videos(tmp_path_factory):
  """Broken files next to good ones: name → path. Truncations keep a readable index (faststart
  mp4 with the moov atom in front; webm with its header), so demuxing yields fewer frames than
  the container declares."""
  import numpy as np
  d = tmp_path_factory.mktemp("bad")
  frames = synthetic.motion_frames(0, np.random.default_rng(3), 60, 48, 64)
  out = {}
  out["good.mp4"] = write_video(str(d / "good.mp4"), frames, container_options={"movflags": "faststart"})
  out["good.webm"] = write_video(str(d / "good.webm"), frames[:30], "libvpx-vp9")
  for name in ("good.mp4", "good.webm"):  # cut at the packet boundary nearest to half the file
    import av
    data = open(out[name], "rb").read()
    with av.open(out[name]) as c:
      ends = [p.pos + p.size for p in c.demux(video=0) if p.size and p.pos is not None]
    end = min(ends, key=lambda e: abs(e - len(data) / 2))
    cut = d / name.replace("good", "trunc")
    cut.write_bytes(data[:end])
    out[cut.name] = str(cut)
  out["audio.mp4"] = write_audio_only(str(d / "audio.mp4"))
  (d / "text.mp4").write_text("this is not a video\n")
  out["text.mp4"] = str(d / "text.mp4")
  (d / "empty.mp4").write_bytes(b"")
  out["empty.mp4"] = str(d / "empty.mp4")
  out["missing.mp4"] = str(d / "missing.mp4")
  return out
