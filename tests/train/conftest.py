"""Shared pieces of the training tests: configs by path, a tiny synthetic dataset, the train CLI."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vidjax.data import synthetic

ROOT = Path(__file__).resolve().parents[2]
TRAIN = str(ROOT / "experiments" / "train.py")


def _load_config(rel: str, arg: str | None = None):
  spec = importlib.util.spec_from_file_location("cfg_" + rel.replace("/", "_")[:-3],
                                                ROOT / "configs" / rel)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@pytest.fixture(scope="session")
def load_config():
  """``load_config('uniformerv2/tiny_test.py'[, arg])`` -> ConfigDict (unlocked)."""
  return _load_config


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
  """A tiny synthetic motion dataset: 8 classes x 2 train / 1 val videos, 16 frames, 40x48."""
  d = str(tmp_path_factory.mktemp("synth"))
  synthetic.write_dataset(d, 2, num_classes=8, num_frames=16, height=40, width=48, split="train",
                          seed=0)
  synthetic.write_dataset(d, 1, num_classes=8, num_frames=16, height=40, width=48, split="val",
                          seed=1)
  return d


def data_flags(root: str) -> list[str]:
  """Overrides pointing a tiny_test config at the `synth` folder (list files, no workers)."""
  return [f"--config.data.source=files", "--config.data.format=list",
          f"--config.data.train_annotations={root}/train.txt",
          f"--config.data.eval_annotations={root}/val.txt", f"--config.data.video_dir={root}",
          "--config.data.workers=0", "--config.data.video_short_side=40"]


def train_command(config: str, workdir: str, *flags: str) -> list[str]:
  return [sys.executable, TRAIN, f"--config={ROOT / 'configs' / config}", f"--workdir={workdir}",
          *flags]


def env(devices: int = 8) -> dict:
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  e = dict(os.environ, JAX_PLATFORMS="cpu", HF_HUB_OFFLINE="1",
           XLA_FLAGS=" ".join([*flags, f"--xla_force_host_platform_device_count={devices}"]))
  e["PYTHONPATH"] = str(ROOT)
  return e


def run(cmd: list[str], devices: int = 8, check: bool = True, timeout: int = 600):
  out = subprocess.run(cmd, capture_output=True, text=True, env=env(devices), cwd=ROOT,
                       timeout=timeout)
  if check and out.returncode != 0:
    raise AssertionError(f"{' '.join(cmd)} exited {out.returncode}\n{out.stderr[-4000:]}")
  return out


@pytest.fixture(scope="session")
def cli():
  """The helpers above, for tests (conftest modules are not importable under importlib mode)."""
  import types
  return types.SimpleNamespace(data_flags=data_flags, train_command=train_command, env=env,
                               run=run, root=ROOT)
