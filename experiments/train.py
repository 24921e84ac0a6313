r"""Trains an experiment config; resumes automatically from the latest checkpoint in --workdir.

    python experiments/train.py --config configs/uniformerv2/ssv2_b16_16x224.py:/data/ssv2_prepared \
        --workdir runs/ssv2_b16 [--config.init_from.checkpoint=weights/uniformerv2_b16_clip]
    python experiments/train.py --config configs/demo/uniformerv2.py:/tmp/synth --workdir /tmp/run

Multi-host: pass ``--coordinator_address HOST:PORT --num_processes N --process_id I`` (all three)
on every host; without them ``jax.distributed.initialize()`` runs only where the environment
asks for it (TPU pods, SLURM), else this is one process. On CPU the cross-process collectives use
gloo. Writes ``WORKDIR/metrics.jsonl``, ``WORKDIR/tb/``, ``WORKDIR/checkpoints/<step>/``,
``WORKDIR/config.json`` and ``WORKDIR/bad_videos.txt`` (undecodable videos replaced in training).
Exit codes: 0 done or preempted (SIGTERM/SIGINT: checkpoint saved), 3 non-finite loss, 2 bad
config or data.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags, logging

from vidjax import cli

_CONFIG = cli.define_config(lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "jax.distributed coordinator.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "jax.distributed process count.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "jax.distributed process index.")
flags.mark_flags_as_required(["config", "workdir"])


def initialize_distributed(coordinator: str | None, num_processes: int | None,
                           process_id: int | None) -> None:
  """``jax.distributed.initialize`` from the flags, or where the environment asks for it."""
  import jax
  given = [coordinator is not None, num_processes is not None, process_id is not None]
  if any(given) and not all(given):
    raise app.UsageError("--coordinator_address, --num_processes and --process_id go together")
  if all(given):
    if jax.config.jax_platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS") == "cpu":
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes, process_id)
  elif any(k in os.environ for k in ("TPU_WORKER_HOSTNAMES", "SLURM_JOB_ID",
                                     "JAX_COORDINATOR_ADDRESS")):
    jax.distributed.initialize()


def main(argv: list[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  from vidjax.train import metrics
  metrics.quiet_library_logs()
  initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  import jax
  from vidjax.train import loop
  if jax.process_index() != 0:
    logging.set_verbosity(logging.WARNING)
  try:
    result = loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except loop.NonFiniteError as e:
    logging.error("%s", e)
    print(f"error: {e}", file=sys.stderr)
    return 3
  except (ValueError, FileNotFoundError, KeyError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if jax.process_index() == 0:
    print(json.dumps(result, default=float))
  if jax.process_count() > 1:
    from vidjax.train import mesh
    mesh.exit_all_processes(0)
  return 0


if __name__ == "__main__":
  cli.run(lambda argv: sys.exit(main(argv)))
