r"""Evaluates a checkpoint with the papers' multi-view test protocol.

    python experiments/evaluate.py --config configs/uniformerv2/k400_b16_8x224.py:/data/k400 \
        --checkpoint weights/uniformerv2_b16_k400            # a `python -m convert` output
    python experiments/evaluate.py --config configs/demo/uniformerv2.py:/tmp/synth \
        --checkpoint /tmp/run                                 # a training workdir (latest step)

Views = ``data.eval.num_clips`` temporal clips x ``data.eval.num_crops`` spatial crops after the
short side is resized to ``data.eval.short_side`` (Kinetics 4x3, Sth-Sth 1x3, ANet/HACS 10x3,
frozen 3x1, Video-FocalNet 4x3 in the released configs); per-view softmax summed per video.
Videos that cannot be decoded are counted and listed, never replaced. Writes
``CHECKPOINT/eval_<split>.json`` (top-1, top-5, mean per-class accuracy, failures, the confusion
matrix) and, for <= 50 classes, ``CHECKPOINT/eval_<split>_confusion.png``; the last output line
is the JSON summary. Multi-host: every process evaluates its slice; results are gathered once.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from vidjax import cli

_CONFIG = cli.define_config(lock_config=False)
_CHECKPOINT = flags.DEFINE_string("checkpoint", None,
                                  "Training workdir or converted checkpoint directory.")
_SPLIT = flags.DEFINE_string("split", "val", "Name used in the output files (the data comes "
                             "from data.eval_annotations / data.eval_split).")
_OUT = flags.DEFINE_string("out", None, "Output directory (default: --checkpoint).")
flags.mark_flags_as_required(["config", "checkpoint"])


def main(argv: list[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  from vidjax.train import metrics
  metrics.quiet_library_logs()
  import jax
  from vidjax.train import evaluate
  try:
    summary = evaluate.evaluate_checkpoint(_CONFIG.value, _CHECKPOINT.value, _SPLIT.value,
                                           _OUT.value)
  except (ValueError, FileNotFoundError, KeyError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if jax.process_index() == 0:
    print(json.dumps(summary))
  if jax.process_count() > 1:
    from vidjax.train import mesh
    mesh.exit_all_processes(0)
  return 0


if __name__ == "__main__":
  cli.run(lambda argv: sys.exit(main(argv)))
