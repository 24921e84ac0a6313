r"""Classifies videos with a checkpoint, using the checkpoint's test protocol.

    python experiments/infer.py --checkpoint weights/uniformerv2_b16_k400 --video my_clip.mp4
    python experiments/infer.py --checkpoint /tmp/run --video 'clips/*.mp4' --top_k 3

``--checkpoint`` is a training workdir (latest step; its config.json gives the test views) or a
``python -m convert`` output (the views of its family: UniFormerV2 Kinetics 4x3 / Sth-Sth 1x3,
Video-FocalNet 4x3, frames and resolution from the model). Several ``--video`` values or globs run
as one batch. Prints the top-k class names with probabilities (mean over the views of the
per-view softmax; names from the checkpoint's label list, indices when it has none); the last
line is a JSON object ``{"video": path, "top_k": [[name, prob], ...]}`` (``{"videos": [...]}``
for several). A missing, empty or undecodable file, or a directory: one line naming it, exit 2.
"""

from __future__ import annotations

import glob
import json
import os
import sys

from absl import app, flags

from vidjax import cli

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Training workdir or converted checkpoint.")
_VIDEO = flags.DEFINE_multi_string("video", None, "Video file(s) or glob(s).")
_TOP_K = flags.DEFINE_integer("top_k", 5, "How many classes to print per video.")
flags.mark_flags_as_required(["checkpoint", "video"])


class InputError(ValueError):
  """A bad --video / --checkpoint value (exit code 2)."""


def expand(patterns: list[str]) -> list[str]:
  """Paths of every --video value (globs expanded), each checked to be a non-empty file."""
  paths = []
  for p in patterns:
    hits = sorted(glob.glob(p)) if glob.has_magic(p) else [p]
    if not hits:
      raise InputError(f"--video {p}: no file matches")
    paths.extend(hits)
  for p in paths:
    if os.path.isdir(p):
      raise InputError(f"--video {p}: is a directory, not a video file")
    if not os.path.isfile(p):
      raise InputError(f"--video {p}: no such file")
    if os.path.getsize(p) == 0:
      raise InputError(f"--video {p}: empty file")
  return paths


def protocol(checkpoint: str):
  """(experiment config, class names) for ``checkpoint``: its own config when it is a workdir."""
  import ml_collections
  from vidjax.data import config as data_config
  from vidjax.train import checkpoint as ckpt_lib
  from vidjax import configs
  model_cfg, flat, info = ckpt_lib.read_weights(checkpoint)
  path = os.path.join(checkpoint, ckpt_lib.CONFIG_FILE)
  if ckpt_lib.is_workdir(checkpoint) and os.path.isfile(path):
    with open(path) as f:
      config = ml_collections.ConfigDict(json.load(f))
  else:
    from vidjax import models
    cfg = models.model_config(model_cfg)
    config = ml_collections.ConfigDict({"model": model_cfg.to_dict()})
    if model_cfg.name == "uniformerv2":
      config.data = data_config.uniformerv2_data("ssv2" if cfg.temporal_downsample else "k400")
      config.data.eval.num_crops = 3
    else:
      config.data = data_config.video_focalnet_data("k400")
    config.data.update(num_frames=cfg.num_frames, crop_size=cfg.image_size,
                       num_classes=cfg.num_classes)
    config.data.eval.short_side = cfg.image_size
    config.sharding_rules = configs.SHARDING_RULES
  from vidjax.train import evaluate
  return config, flat, evaluate.class_names(info, config)


def infer(checkpoint: str, videos: list[str], top_k: int = 5) -> list[dict]:
  """Top-k (name, probability) per video."""
  import jax
  import numpy as np
  from flax import nnx
  from vidjax.data import decode, pipeline, sources
  from vidjax.train import evaluate as eval_lib
  from vidjax.train import mesh as mesh_lib

  paths = expand(videos)
  if not os.path.isdir(checkpoint):
    raise InputError(f"--checkpoint {checkpoint}: no such directory")
  config, flat, names = protocol(checkpoint)
  config.data.update(eval_batch_size=len(paths), workers=0)
  source = sources.VideoFileSource([sources.VideoRecord(p, 0, os.path.basename(p)) for p in paths])
  loader = pipeline.ClipLoader(source, config.data, train=False)
  elements = [loader(i) for i in range(len(paths))]
  for p, el in zip(paths, elements):
    if el["failed"]:
      try:
        decode.num_video_frames(p)
        reason = "cannot decode the sampled frames"
      except decode.DecodeError as e:
        reason = str(e)
      raise InputError(f"--video {p}: not a decodable video ({reason})")
  mesh = mesh_lib.make_mesh((("data", 1), ("fsdp", 1), ("tensor", 1)), jax.devices()[:1])
  ev = eval_lib.evaluator(config, mesh)
  weights = eval_lib.place_weights(ev, flat, checkpoint)
  batch = {k: np.stack([el[k] for el in elements]) for k in ("clip", "label", "valid", "index")}
  with jax.set_mesh(mesh), nnx.logical_axis_rules(ev.rules):
    out = ev.eval_step(weights, jax.device_put(batch, ev.batch_sharding))
  probs = np.asarray(out["scores"]) / batch["clip"].shape[1]  # mean of the views' softmax
  results = []
  for p, row in zip(paths, probs):
    order = np.argsort(-row)[:top_k]
    results.append({"video": p, "top_k": [[names[i], float(row[i])] for i in order]})
  return results


def main(argv: list[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  from vidjax.train import metrics
  metrics.quiet_library_logs()
  try:
    results = infer(_CHECKPOINT.value, _VIDEO.value, _TOP_K.value)
  except (InputError, FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  for r in results:
    print(r["video"])
    for name, p in r["top_k"]:
      print(f"  {p:7.4f}  {name}")
  print(json.dumps(results[0] if len(results) == 1 else {"videos": results}))
  return 0


if __name__ == "__main__":
  cli.run(lambda argv: sys.exit(main(argv)))
