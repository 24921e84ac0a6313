"""Synthetic motion videos (real libx264 mp4 files) whose class is only visible across frames.

Each clip shows a random irregular bright polygon (random colour, size, start pose) over a
random dark gradient background with static distractor blobs. The class is the motion: direction
and speed of a translation (wrapping around the frame) or the sense of a rotation, so a single
frame carries no label information. Also: `frame_id_frames` encodes the frame index as black/white blocks that
survive lossy compression exactly (decoder tests).

CLI: `python -m vidjax.data.synthetic --out DIR --num_per_class N` writes
`DIR/<split>/<class>/<id>.mp4`, `DIR/<split>.txt` (MMAction `path num_frames label`) and
`DIR/classes.txt`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence

import av
import numpy as np
from PIL import Image, ImageDraw

# (name, dx, dy, dtheta): displacement over the whole clip, in fractions of the frame size /
# degrees, whatever its length (TSN sampling spans the whole clip, so a model sees all of it).
MOTIONS = (
    ("right_slow", 0.2, 0.0, 0.0),
    ("left_slow", -0.2, 0.0, 0.0),
    ("down", 0.0, 0.35, 0.0),
    ("up", 0.0, -0.35, 0.0),
    ("rotate_cw", 0.0, 0.0, 150.0),
    ("rotate_ccw", 0.0, 0.0, -150.0),
    ("right_fast", 0.5, 0.0, 0.0),
    ("left_fast", -0.5, 0.0, 0.0),
)
MAX_CLASSES = len(MOTIONS)
# The demo's classes: horizontal translation right / left, crossing the frame once or twice per
# clip. Whole wraps make every class visit the same positions (a full horizontal band), so the
# set of frames, hence any per-frame model with a frame mean, carries no label information; in
# MOTIONS the axis (horizontal / vertical / none) and the smear length are visible per frame.
HORIZONTAL = (
    ("right", 1.0, 0.0, 0.0),
    ("left", -1.0, 0.0, 0.0),
    ("right_fast", 2.0, 0.0, 0.0),
    ("left_fast", -2.0, 0.0, 0.0),
)
Motions = Sequence[tuple[str, float, float, float]]


def class_names(num_classes: int, motions: Motions = MOTIONS) -> list[str]:
  if not 1 <= num_classes <= len(motions):
    raise ValueError(f"num_classes={num_classes}: must be in [1, {len(motions)}]")
  return [m[0] for m in motions[:num_classes]]


def motion_frames(label: int, rng: np.random.Generator, num_frames: int, height: int,
                  width: int, motions: Motions = MOTIONS) -> np.ndarray:
  """uint8 `[T, H, W, 3]` frames of one clip of class `label`.

  Everything but the motion (background, distractors, shape, colour, start pose, speed jitter)
  is drawn from `rng` before the label is used, so one seed gives the same first frame for
  every class.
  """
  _, dx, dy, dth = motions[label]
  yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
  # A dark background and a bright polygon: the contrast polarity is the same in every clip.
  # (With random polarity, the sign of any product of a frame feature and its spatial / temporal
  # gradient flips with the colours; Video-FocalNet's modulation q * m_s * m_t is such a product,
  # and a toy one then needed 5x more steps and still confused the speeds: 0.79 vs 1.0 top-1.)
  c0, c1 = rng.uniform(20, 110, size=(2, 3))
  a = rng.uniform(0, 2 * np.pi)
  g = ((np.cos(a) * xx / width + np.sin(a) * yy / height) + 1.0) / 2.0
  bg = (c0 * (1 - g[..., None]) + c1 * g[..., None]).astype(np.uint8)
  bgi = Image.fromarray(bg)
  d = ImageDraw.Draw(bgi)
  for _ in range(2):  # static distractors
    r = rng.uniform(0.04, 0.08) * min(height, width)
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
  # An irregular (so rotations show), well-spread polygon, brighter than the background.
  k = int(rng.integers(3, 7))
  ang = (np.arange(k) + rng.uniform(-0.3, 0.3, k)) * 2 * np.pi / k
  rad = rng.uniform(0.55, 1.0, k) * rng.uniform(0.18, 0.24) * min(height, width)
  colour = tuple(int(v) for v in rng.uniform(170, 255, 3))
  x0, y0 = rng.uniform(0.35, 0.65) * width, rng.uniform(0.3, 0.7) * height
  th0, speed = rng.uniform(0, 360), rng.uniform(0.85, 1.15)
  steps = max(num_frames - 1, 1)
  out = np.empty((num_frames, height, width, 3), np.uint8)
  for t in range(num_frames):
    img = bgi.copy()
    dr = ImageDraw.Draw(img)
    f = speed * t / steps
    cx = (x0 + f * dx * width) % width
    cy = (y0 + f * dy * height) % height
    th = np.deg2rad(th0 + f * dth)
    for ox in (-width, 0, width):  # draw wrapped copies so the shape re-enters smoothly
      for oy in (-height, 0, height):
        pts = [(cx + ox + r * np.cos(p + th), cy + oy + r * np.sin(p + th)) for p, r in zip(ang, rad)]
        dr.polygon(pts, fill=colour)
    out[t] = np.asarray(img)
  return out


def frame_id_frames(num_frames: int, height: int = 48, width: int = 64) -> np.ndarray:
  """Frames whose index is written in 8 black/white blocks (bit 7 first), exact under x264."""
  out = np.zeros((num_frames, height, width, 3), np.uint8)
  bw = width // 8
  for t in range(num_frames):
    for b in range(8):
      if (t >> (7 - b)) & 1:
        out[t, :, b * bw:(b + 1) * bw] = 255
  return out


def read_frame_ids(frames: np.ndarray) -> np.ndarray:
  """Inverse of `frame_id_frames` on decoded (possibly rescaled) frames."""
  t, h, w, _ = frames.shape
  bw = w / 8
  cols = [frames[:, h // 4:3 * h // 4, int(b * bw + bw / 4):int(b * bw + 3 * bw / 4)].mean(axis=(1, 2, 3))
          for b in range(8)]
  bits = np.stack(cols, 1) > 127
  return (bits * (1 << np.arange(7, -1, -1))).sum(1)


def write_mp4(path: str, frames: Sequence[np.ndarray], fps: int = 25, gop: int = 16,
              crf: int = 23, preset: str = "veryfast") -> None:
  """libx264 yuv420p mp4 with a keyframe every `gop` frames (no scene-cut keyframes); `frames`
  is a uint8 `[T, H, W, 3]` array or a list of `[H, W, 3]` frames."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with av.open(path, "w") as c:
    s = c.add_stream("libx264", rate=fps)
    s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    s.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "crf": str(crf),
                 "preset": preset}
    s.codec_context.thread_count = 1
    for f in frames:
      for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
        c.mux(p)
    for p in s.encode():
      c.mux(p)


def write_dataset(out: str, num_per_class: int, num_classes: int = 4, num_frames: int | tuple[int, int] = 32,
                  height: int = 48, width: int = 64, fps: int = 25, gop: int = 16,
                  split: str = "train", seed: int = 0,
                  progress: Callable[[int], None] | None = None,
                  motions: Motions = MOTIONS) -> str:
  """Writes `num_per_class` videos per class; returns the MMAction list file path.

  `num_frames` may be a `(min, max)` range (inclusive) to vary video lengths; `progress(n)` is
  called after each video with the number written so far; `motions` is the class table
  (`MOTIONS` or `HORIZONTAL`).
  """
  names = class_names(num_classes, motions)
  rng = np.random.default_rng(seed)
  lines = []
  for k in range(num_per_class):
    for label, name in enumerate(names):
      n = (num_frames if isinstance(num_frames, int)
           else int(rng.integers(num_frames[0], num_frames[1] + 1)))
      rel = os.path.join(split, name, f"{name}_{k:05d}.mp4")
      write_mp4(os.path.join(out, rel), motion_frames(label, rng, n, height, width, motions),
                fps, gop)
      lines.append(f"{rel} {n} {label}")
      if progress is not None:
        progress(len(lines))
  with open(os.path.join(out, "classes.txt"), "w") as f:
    f.write("\n".join(names) + "\n")
  list_path = os.path.join(out, f"{split}.txt")
  with open(list_path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return list_path


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--out", required=True)
  p.add_argument("--num_per_class", type=int, default=8)
  p.add_argument("--num_classes", type=int, default=4)
  p.add_argument("--frames", type=int, default=32)
  p.add_argument("--height", type=int, default=96)
  p.add_argument("--width", type=int, default=128)
  p.add_argument("--fps", type=int, default=25)
  p.add_argument("--gop", type=int, default=16)
  p.add_argument("--splits", default="train,val")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--motions", choices=("motions", "horizontal"), default="motions",
                 help="class table: MOTIONS (directions, speeds, rotations) or HORIZONTAL (the "
                 "demo's right / left at one or two wraps per clip)")
  a = p.parse_args(argv)
  motions = MOTIONS if a.motions == "motions" else HORIZONTAL
  for i, split in enumerate(a.splits.split(",")):
    path = write_dataset(a.out, a.num_per_class, a.num_classes, a.frames, a.height, a.width, a.fps,
                         a.gop, split, a.seed + 1000 * i, motions=motions)
    print(f"wrote {path}")


if __name__ == "__main__":
  main()
