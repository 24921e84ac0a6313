"""Reading weight files without trusting them, labels, the CLI help and atomic checkpoints."""

import argparse
import collections
import os
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

from convert import common, io
from vidjax.models import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Exploit:
  """Unpickling this runs `touch <marker>` -- unless the unpickler refuses os.system."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_never_runs_code_from_the_file(tmp_path):
  torch = pytest.importorskip("torch")
  marker = tmp_path / "pwned"
  path = str(tmp_path / "ckpt.pth")
  torch.save({"model": collections.OrderedDict(w=torch.ones(2, 3, dtype=torch.bfloat16),
                                               n=torch.tensor(7)),
              "config": argparse.Namespace(lr=0.1), "payload": _Exploit(marker),
              "np_scalar": np.float64(1.5), "epoch": 3}, path)
  sd, src = io.read_state_dict(path)
  assert not marker.exists()
  assert sorted(sd) == ["n", "w"] and sd["w"].dtype == np.float32 and sd["n"].dtype == np.int64
  np.testing.assert_array_equal(sd["w"], np.ones((2, 3), np.float32))
  skipped = "\n".join(src.skipped)
  for name in ("argparse.Namespace", "posix.system", "numpy"):
    assert name in skipped
  assert src.container == "checkpoint['model']"
  assert any("no code from the file was executed" in n for n in src.notes)


def test_plain_weights_only_pickles_take_the_safe_path(tmp_path):
  torch = pytest.importorskip("torch")
  path = str(tmp_path / "ddp.pt")
  torch.save({"state_dict": {"module.a.weight": torch.arange(6.).reshape(2, 3)}}, path)
  sd, src = io.read_state_dict(path)
  assert list(sd) == ["a.weight"] and src.stripped_prefix == "module."
  assert src.notes == [] and src.container == "checkpoint['state_dict']"


def test_safetensors_bf16_fp16_read_with_numpy_only(tmp_path):
  x = np.array([[1.5, -2.25], [3.0, 0.0078125]], np.float32)
  path = str(tmp_path / "w.safetensors")
  from safetensors.numpy import save_file
  save_file({"b": x.astype(ml_dtypes.bfloat16), "h": x.astype(np.float16),
             "i": np.arange(3, dtype=np.int64)}, path)
  sd, src = io.read_state_dict(path)
  np.testing.assert_array_equal(sd["b"], x)
  np.testing.assert_array_equal(sd["h"], x)
  assert sd["b"].dtype == np.float32 and sd["i"].dtype == np.int64
  assert src.dtypes == {"BF16": 1, "F16": 1, "I64": 1} and src.sha256 == io.sha256_of(path)


def test_unknown_files_and_missing_state_dicts_are_named(tmp_path):
  with pytest.raises(ValueError, match="unknown file type"):
    (tmp_path / "w.npz").write_bytes(b"x")
    io.read_state_dict(str(tmp_path / "w.npz"))
  with pytest.raises(FileNotFoundError, match="no such file"):
    io.read_state_dict(str(tmp_path / "absent.pth"))


def test_labels_formats(tmp_path):
  plain = tmp_path / "plain.txt"
  plain.write_text("class 0\nclass 1\nclass 2\n")
  assert common.read_labels(str(plain), 3) == ["class 0", "class 1", "class 2"]
  indexed = tmp_path / "label_map_k710.txt"
  indexed.write_text("riding a bike 1\nmarching 0\ndodgeball 2\n")
  assert common.read_labels(str(indexed), 3) == ["marching", "riding a bike", "dodgeball"]
  js = tmp_path / "labels.json"
  js.write_text('{"b": 1, "a": 0}')
  assert common.read_labels(str(js), 2) == ["a", "b"]
  with pytest.raises(ValueError, match="3 class names, but the model has 4 classes"):
    common.read_labels(str(plain), 4)


def test_save_is_atomic_and_refuses_to_overwrite(tmp_path):
  config = common.load_config_file(os.path.join(ROOT, "configs", "video_focalnet",
                                                "tiny_test.py")).model
  out = str(tmp_path / "ckpt")
  os.makedirs(out)
  with pytest.raises(FileExistsError):
    checkpoint.save(out, {}, config)
  with pytest.raises(ValueError, match="missing"):   # bad weights: nothing left behind
    checkpoint.save(str(tmp_path / "new"), {("head", "bias"): np.zeros(10)}, config)
  from flax import nnx

  from vidjax import models
  zeros = {tuple(p): np.zeros(v.get_value().shape, np.float32) for p, v in nnx.to_flat_state(
      nnx.state(models.abstract(config), nnx.Any(nnx.Param, nnx.BatchStat)))}
  with pytest.raises(TypeError):   # fails after the weights were written: the tmp dir goes too
    checkpoint.save(str(tmp_path / "new"), zeros, config, extra_files={"x.json": object()})
  assert sorted(os.listdir(tmp_path)) == ["ckpt"]
  path = checkpoint.save(str(tmp_path / "new"), zeros, config, {"labels": list("abcdefghij")})
  model, info = checkpoint.load(path)
  assert info["labels"][1] == "b" and sorted(os.listdir(tmp_path)) == ["ckpt", "new"]
  assert not np.asarray(model.head.kernel.get_value()).any()


def test_cli_help_explains_every_source_format():
  env = dict(os.environ, PYTHONPATH=ROOT)
  top = subprocess.run([sys.executable, "-m", "convert", "--help"], capture_output=True,
                       text=True, cwd=ROOT, env=env, check=True).stdout
  for command in ("clip", "focalnet", "uniformerv2", "video-focalnet", "export"):
    assert command in top
  assert "vidjax.models.load(OUT)" in top
  sub = subprocess.run([sys.executable, "-m", "convert", "clip", "--help"], capture_output=True,
                       text=True, cwd=ROOT, env=env, check=True).stdout
  for layout in ("openai-torchscript", "clip-state-dict", "clip-visual", "hf-clip", "--inflate"):
    assert layout in sub


def test_load_restores_sharded_onto_a_mesh(tmp_path):
  import jax
  from flax import nnx

  from vidjax import models
  config = common.load_config_file(os.path.join(ROOT, "configs", "video_focalnet",
                                                "tiny_test.py")).model
  abstract = nnx.state(models.abstract(config), nnx.Any(nnx.Param, nnx.BatchStat))
  rng = np.random.default_rng(0)
  weights = {tuple(p): rng.standard_normal(v.get_value().shape).astype(np.float32)
             for p, v in nnx.to_flat_state(abstract)}
  path = checkpoint.save(str(tmp_path / "ckpt"), weights, config)
  names = {n for _, v in nnx.to_flat_state(abstract)
           for n in (v.get_metadata().get("out_sharding") or ())}
  rules = [(n, "model" if n == "classes" else None) for n in sorted(names - {None})]
  mesh = jax.make_mesh((4, 2), ("data", "model"),
                       axis_types=(jax.sharding.AxisType.Auto,) * 2)
  model, _ = checkpoint.load(path, mesh=mesh, rules=rules)
  kernel = model.head.kernel.get_value()
  assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, "model")
  assert len(kernel.addressable_shards) == 8
  got = checkpoint.flat_weights(model)
  for k, v in weights.items():
    np.testing.assert_array_equal(got[k], v, err_msg=str(k))
