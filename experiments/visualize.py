r"""Draws what a checkpoint looks at in a video (UniFormerV2 Fig. 4, Video-FocalNet Fig. 7).

    python experiments/visualize.py --checkpoint /tmp/run --video clip.mp4 --out /tmp/viz
    python experiments/visualize.py --checkpoint /tmp/run --video clip.mp4 --out /tmp/viz \
        --kind attention
    python experiments/visualize.py --checkpoint weights/uniformerv2_b16_k400 --video clip.mp4 \
        --out /tmp/viz --kind cam --class 'playing guitar'

``--checkpoint``, ``--video`` (several values or globs: one picture each), the class names and
the decoding are those of ``experiments/infer.py`` (the checkpoint's test protocol), with one
view: the centre crop of the middle temporal clip. ``--kind`` (see ``vidjax/viz.py``):

* ``cam`` (UniFormerV2, default): gradient-weighted class activation map on the last block's
  patch tokens, through the real head (``jax.grad``), for the predicted class or ``--class``;
* ``attention`` (UniFormerV2): the global UniBlocks' query-to-token affinities;
* ``modulators`` (Video-FocalNet, default): per stage |h(ctx_s)| and |h_temporal(ctx_t)|.

Writes ``OUT/<video>_<kind>.png`` (frames on top, maps below, class and probability in the
title) and ``OUT/<video>_<kind>.gif``; the last line is a JSON object ``{"video", "kind",
"class", "probability", "predicted", "cpu_s", "files"}`` (``{"videos": [...]}`` for several).
A bad ``--video`` / ``--checkpoint``, an unknown ``--class`` or a ``--kind`` the network does
not have: one line naming it, exit 2.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from typing import Any, NamedTuple

from absl import app, flags

from vidjax import cli


def _infer_module():
  """experiments/infer.py (checkpoint protocol, class names, --video checks), loaded by path."""
  spec = importlib.util.spec_from_file_location(
      "infer", os.path.join(os.path.dirname(os.path.abspath(__file__)), "infer.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


# infer.py defines --checkpoint and --video (several values or globs: one PNG and GIF each) on
# the global absl flags; they are this script's too (and its --top_k, unused here).
infer = _infer_module()
InputError = infer.InputError

_OUT = flags.DEFINE_string("out", None, "Output directory for the PNGs and GIFs.")
_KIND = flags.DEFINE_string("kind", None, "cam, attention or modulators: what to draw (default: "
                            "cam for UniFormerV2, modulators for Video-FocalNet).")
_CLASS = flags.DEFINE_string("class", None, "Class name of the CAM (default: the predicted one).")
flags.mark_flags_as_required(["out"])


class Visualizer(NamedTuple):
  """An eval-mode model from a checkpoint, with what drawing its maps needs."""
  model: Any
  mesh: Any
  rules: tuple
  config: Any
  names: list[str]
  kind: str
  class_index: int | None


def visualizer(checkpoint: str, kind: str | None = None,
               class_name: str | None = None) -> Visualizer:
  """Checks ``kind`` and ``class_name`` against the checkpoint, then builds its model."""
  if not os.path.isdir(checkpoint):
    raise InputError(f"--checkpoint {checkpoint}: no such directory")
  import jax
  from vidjax import viz
  from vidjax.train import evaluate as eval_lib
  from vidjax.train import mesh as mesh_lib

  config, flat, names = infer.protocol(checkpoint)
  network = config.model.name
  kind = kind or viz.KINDS[network][0]
  if kind not in viz.KINDS[network]:
    raise InputError(f"--kind {kind}: not available for {network} (expected one of "
                     f"{', '.join(viz.KINDS[network])})")
  class_index = None
  if class_name is not None:
    if kind != "cam":
      raise InputError(f"--class applies to --kind cam only (got --kind {kind})")
    if class_name not in names:
      shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
      raise InputError(f"--class {class_name!r}: not a class of {checkpoint} ({len(names)} "
                       f"classes: {shown})")
    class_index = names.index(class_name)
  config.data.update(eval_batch_size=1, workers=0)
  config.data.eval.update(num_clips=1, num_crops=1)  # the middle clip, centre crop
  mesh = mesh_lib.make_mesh((("data", 1), ("fsdp", 1), ("tensor", 1)), jax.devices()[:1])
  ev = eval_lib.evaluator(config, mesh)
  model = ev.model.merge(False, *eval_lib.place_weights(ev, flat, checkpoint))
  return Visualizer(model, mesh, ev.rules, config, names, kind, class_index)


def decode_clip(config, path: str):
  """uint8 [T, H, W, 3]: the one test view of ``path`` under ``config.data``."""
  from vidjax.data import decode, pipeline, sources
  source = sources.VideoFileSource([sources.VideoRecord(path, 0, os.path.basename(path))])
  element = pipeline.ClipLoader(source, config.data, train=False)(0)
  if element["failed"]:
    try:
      decode.num_video_frames(path)
      reason = "cannot decode the sampled frames"
    except decode.DecodeError as e:
      reason = str(e)
    raise InputError(f"--video {path}: not a decodable video ({reason})")
  return element["clip"][0]


def maps_of(v: Visualizer, clip):
  """``viz.Maps`` of one uint8 clip [T, H, W, 3] (normalised as the eval step does)."""
  import jax
  from flax import nnx
  from vidjax import viz
  from vidjax.data import mixing
  from vidjax.train import step as step_lib
  x = mixing.normalize(clip[None], tuple(v.config.data.mean), tuple(v.config.data.std),
                       step_lib.compute_dtype(v.config.model))
  with jax.set_mesh(v.mesh), nnx.logical_axis_rules(v.rules):
    return viz.compute(v.model, x, v.kind, v.class_index)


def visualize(checkpoint: str, videos: list[str], out: str, kind: str | None = None,
              class_name: str | None = None) -> list[dict]:
  """Draws every video's maps into ``out``; one summary per video."""
  paths = infer.expand(videos)
  stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
  for p, stem in zip(paths, stems):
    if stems.count(stem) > 1:
      raise InputError(f"--video {p}: several videos named {stem!r} would write the same "
                       f"{out}/{stem}_* files")
  v = visualizer(checkpoint, kind, class_name)
  from vidjax import viz
  results = []
  for path, stem in zip(paths, stems):
    start = time.process_time()
    clip = decode_clip(v.config, path)
    maps = maps_of(v, clip)
    files = viz.write(out, stem, clip, maps, v.names)
    k, top = maps.class_index, int(maps.probs.argmax())
    results.append({"video": path, "kind": v.kind, "class": v.names[k],
                    "probability": float(maps.probs[k]), "predicted": v.names[top],
                    "cpu_s": round(time.process_time() - start, 2), "files": files})
  return results


def main(argv: list[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  from vidjax.train import metrics
  metrics.quiet_library_logs()
  try:
    results = visualize(flags.FLAGS.checkpoint, flags.FLAGS.video, _OUT.value, _KIND.value,
                        _CLASS.value)
  except (InputError, FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  for r in results:
    print(f"{r['video']}: {r['kind']} for {r['class']!r} (p={r['probability']:.4f}, predicted "
          f"{r['predicted']!r}), {r['cpu_s']:.1f} s CPU")
    for f in r["files"]:
      print(f"  wrote {f}")
  print(json.dumps(results[0] if len(results) == 1 else {"videos": results}))
  return 0


if __name__ == "__main__":
  cli.run(lambda argv: sys.exit(main(argv)))
