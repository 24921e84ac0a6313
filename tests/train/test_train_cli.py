"""``experiments/train.py`` end to end: logs, resume after kill -9 (bit-identical), SIGTERM,
non-finite stop, restore on other meshes.

Every run is a subprocess on 8 (or 4, or 1) simulated CPU devices training the tiny UniFormerV2
(BatchNorm, drop-path, dropout: every source of state and randomness) on the `synth` videos.
Programs are compiled once and then come from the persistent compilation cache (tests/conftest.py).
"""

import json
import os
import shutil
import signal
import subprocess
import time
import types

import filelock
import numpy as np
import pytest

from vidjax.train import metrics as metrics_lib

U = "uniformerv2/tiny_test.py"
STEPS = 8


def _flags(synth, cli, *extra):
  return [*cli.data_flags(synth), "--config.log_every_steps=1", "--config.eval_every_steps=0",
          "--config.checkpoint_every_steps=3", "--config.keep_checkpoints=5",
          f"--config.num_train_steps={STEPS}", *extra]


def _losses(workdir):
  return {r["step"]: r["loss"] for r in metrics_lib.read_metrics(workdir) if "split" not in r}


def _steps_saved(workdir):
  d = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(d) if n.isdigit())


@pytest.fixture(scope="session")
def reference(synth, cli, tmp_path_factory, worker_id):
  """An uninterrupted 8-step run on 8 devices (checkpoints at 3, 6, 8), with validation.

  Made once per test run: under xdist the workers share it through a lock in the run's common
  temporary folder (the synthetic videos are byte-identical on every worker: same seeds, x264
  single-threaded), so only one of them pays for it.
  """
  if worker_id == "master":
    wd = str(tmp_path_factory.mktemp("reference"))
    out = cli.run(cli.train_command(U, wd, *_flags(synth, cli, "--config.eval_every_steps=8")))
    return wd, out
  shared = tmp_path_factory.getbasetemp().parent
  wd, done = shared / "train_cli_reference", shared / "train_cli_reference.json"
  with filelock.FileLock(str(shared / "train_cli_reference.lock")):
    if not done.exists():
      out = cli.run(cli.train_command(U, str(wd), *_flags(synth, cli,
                                                          "--config.eval_every_steps=8")))
      done.write_text(json.dumps({"stdout": out.stdout, "stderr": out.stderr}))
  return str(wd), types.SimpleNamespace(**json.loads(done.read_text()))


def test_train_cli_writes_metrics_tensorboard_checkpoints_and_curves(reference, cli):
  wd, out = reference
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["step"] == STEPS and not result["preempted"]
  rows = metrics_lib.read_metrics(wd)
  train = [r for r in rows if "split" not in r]
  assert [r["step"] for r in train] == list(range(1, STEPS + 1))
  for key in ("loss", "lr", "grad_norm", "clips_per_s", "data_wait_fraction", "step_time_s",
              "num_replaced", "num_blank"):
    assert all(isinstance(r[key], (int, float)) and np.isfinite(r[key]) for r in train), key
  val = [r for r in rows if r.get("split") == "val"]
  assert [r["step"] for r in val] == [STEPS] and 0.0 <= val[0]["top1"] <= 1.0
  assert val[0]["num_videos"] == 8 and val[0]["num_failed"] == 0
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(wd, "tb")))
  assert _steps_saved(wd) == [3, 6, 8]
  assert json.load(open(os.path.join(wd, "config.json")))["model"]["name"] == "uniformerv2"
  assert "step 8/8 eta" in out.stderr and "clips/s" in out.stderr and "data-wait" in out.stderr
  plot = cli.run([os.sys.executable, str(cli.root / "experiments" / "plot.py"), wd])
  png = json.loads(plot.stdout.strip().splitlines()[-1])["png"]
  assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_kill9_then_rerun_reproduces_the_uninterrupted_losses_bit_for_bit(reference, synth, cli,
                                                                          tmp_path):
  ref = _losses(reference[0])
  wd = str(tmp_path / "killed")
  cmd = cli.train_command(U, wd, *_flags(synth, cli))
  proc = subprocess.Popen(cmd, env=cli.env(), cwd=cli.root, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while time.time() < deadline and not os.path.isdir(os.path.join(wd, "checkpoints", "3")):
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)  # mid-run: somewhere in steps 4-6, maybe mid-save
  proc.wait()
  assert proc.returncode == -signal.SIGKILL
  killed_at = max(_losses(wd))
  assert 3 <= killed_at < STEPS, killed_at
  out = cli.run(cmd)
  assert "resumed from" in out.stderr
  got = _losses(wd)  # the last line per step: steps re-run after the kill appear twice
  print(f"killed after step {killed_at}; resumed from {out.stderr.split('resumed from ')[1][:60]}")
  assert got == ref, {s: (got.get(s), ref[s]) for s in ref if got.get(s) != ref[s]}


def test_sigterm_finishes_the_step_saves_and_exits_0(synth, cli, tmp_path):
  wd = str(tmp_path / "preempted")
  cmd = cli.train_command(U, wd, *_flags(synth, cli, "--config.num_train_steps=1000",
                                         "--config.checkpoint_every_steps=1000"))
  proc = subprocess.Popen(cmd, env=cli.env(), cwd=cli.root, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  metrics = os.path.join(wd, metrics_lib.METRICS_FILE)
  deadline = time.time() + 300
  while time.time() < deadline and not (os.path.exists(metrics) and
                                        len(open(metrics).readlines()) >= 2):
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  stdout, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 0, stderr[-3000:]
  result = json.loads(stdout.strip().splitlines()[-1])
  assert result["preempted"] and result["step"] >= 2
  assert _steps_saved(wd) == [result["step"]]
  assert max(_losses(wd)) == result["step"]


def test_nonfinite_loss_stops_with_exit_3_and_the_last_checkpoint_untouched(reference, synth,
                                                                             cli, tmp_path):
  wd = str(tmp_path / "nan")
  shutil.copytree(reference[0], wd)
  before = {s: os.path.getmtime(os.path.join(wd, "checkpoints", str(s))) for s in
            _steps_saved(wd)}
  out = cli.run(cli.train_command(U, wd, *_flags(synth, cli, "--config.num_train_steps=12",
                                                 "--config.data.std=(0.,0.,0.)")), check=False)
  assert out.returncode == 3, out.stderr[-3000:]
  assert "step 9: loss=nan" in out.stderr and "no checkpoint was written" in out.stderr
  assert {s: os.path.getmtime(os.path.join(wd, "checkpoints", str(s))) for s in
          _steps_saved(wd)} == before


@pytest.mark.parametrize("devices", [4, 1])  # saved sharded over 8 devices
def test_resume_on_a_different_mesh_continues_the_run(reference, synth, cli, tmp_path, devices):
  ref = _losses(reference[0])
  wd = str(tmp_path / f"mesh{devices}")
  shutil.copytree(reference[0], wd)
  shutil.rmtree(os.path.join(wd, "checkpoints", "8"))  # resume from step 6, saved on 8 devices
  out = cli.run(cli.train_command(U, wd, *_flags(synth, cli)), devices=devices)
  assert "resumed from" in out.stderr and f"on {devices} devices" in out.stderr
  got = _losses(wd)
  print(f"{devices} devices: steps 7-8 {got[7]:.7f} {got[8]:.7f} vs 8 devices {ref[7]:.7f} "
        f"{ref[8]:.7f}")
  np.testing.assert_allclose([got[7], got[8]], [ref[7], ref[8]], rtol=1e-5)
