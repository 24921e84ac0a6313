"""Real multi-host training: 2 processes x 4 CPU devices (``jax.distributed`` on localhost, gloo
collectives, an FSDP x data mesh across the processes) against 1 process x 1 device, same config,
same data (1 process x 8 devices = 1 x 1 is ``test_step.py``'s, in process).

The pipeline splits each global batch block-wise over processes, so all three runs see the same
global batches; dropout masks and mixing are drawn for the global arrays. The losses agree to
fp32 reduction-order noise (rtol 1e-5).
"""

import json
import os
import socket
import subprocess

import numpy as np
import pytest

from vidjax.train import metrics as metrics_lib

U = "uniformerv2/tiny_test.py"


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _losses(workdir):
  return [r["loss"] for r in metrics_lib.read_metrics(workdir) if "split" not in r]


@pytest.mark.slow
def test_two_processes_x_4_devices_equal_one_device(synth, cli, tmp_path):
  flags = [*cli.data_flags(synth), "--config.log_every_steps=1", "--config.eval_every_steps=0",
           "--config.checkpoint_every_steps=4", "--config.num_train_steps=4",
           "--config.mesh=(('data',-1),('fsdp',2),('tensor',1))"]
  port = _free_port()
  wd2 = str(tmp_path / "two_hosts")
  procs = [subprocess.Popen(
      cli.train_command(U, wd2, *flags, f"--coordinator_address=127.0.0.1:{port}",
                        "--num_processes=2", f"--process_id={i}"),
      env=cli.env(4), cwd=cli.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-4000:]
  assert "on 8 devices" in outs[0][1]
  # Only process 0 prints the result (gloo's own connection lines aside) and writes metrics.
  assert not [l for l in outs[1][0].splitlines() if l.startswith("{")]
  assert {"process_0-of-2.json", "process_1-of-2.json"} <= set(
      os.listdir(os.path.join(wd2, "checkpoints", "4", "data")))  # one iterator state each
  two = _losses(wd2)
  one1 = str(tmp_path / "one_host_1")
  cli.run(cli.train_command(U, one1, *flags[:-1]), devices=1)
  l1 = _losses(one1)
  print(f"2x4 {two}\n1x1 {l1}\nmax rel diff 2x4 vs 1x1: "
        f"{np.max(np.abs(np.subtract(two, l1)) / np.abs(l1)):.2e}")
  assert len(two) == len(l1) == 4
  np.testing.assert_allclose(two, l1, rtol=1e-5)
  assert json.loads([l for l in outs[0][0].splitlines() if l.startswith("{")][-1])["step"] == 4
