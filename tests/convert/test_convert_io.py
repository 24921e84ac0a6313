"""Reading weight files without trusting them, labels, the CLI help and atomic checkpoints."""

import argparse
import collections
import os
import subprocess
import sys
import types

import ml_dtypes
import numpy as np
import pytest

from convert import common, io
from vidjax.models import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class CfgNode(dict):
  """yacs.config.CfgNode as Video-FocalNet pickles it: a dict subclass with __dict__ state."""

  def __init__(self, init_dict=None, new_allowed=False):
    super().__init__(init_dict or {})
    self.__dict__["__immutable__"] = False
    self.__dict__["__deprecated_keys__"] = set()
    self.__dict__["__renamed_keys__"] = {}
    self.__dict__["__new_allowed__"] = new_allowed


@pytest.mark.parametrize("zip_format", [True, False], ids=["torch-zip", "torch-legacy"])
def test_released_extras_load_as_inert_placeholders(zip_format, tmp_path, monkeypatch):
  """A Video-FocalNet-style file (yacs config, argparse args, numpy scalars, optimizer state)
  loads its tensors; the classes become placeholders, no code of them is imported or run."""
  torch = pytest.importorskip("torch")
  yacs, config_module = types.ModuleType("yacs"), types.ModuleType("yacs.config")
  yacs.config, config_module.CfgNode = config_module, CfgNode
  monkeypatch.setattr(CfgNode, "__module__", "yacs.config")
  monkeypatch.setitem(sys.modules, "yacs", yacs)
  monkeypatch.setitem(sys.modules, "yacs.config", config_module)
  path = str(tmp_path / "ckpt.pth")
  w = torch.arange(6, dtype=torch.float32).reshape(2, 3) / 7
  torch.save({"model": collections.OrderedDict(w=w.to(torch.bfloat16), t=w.t(),
                                               n=torch.tensor(7)),
              "config": CfgNode({"MODEL": CfgNode({"NAME": "tiny", "DEPTHS": [2, 2]})}),
              "args": argparse.Namespace(lr=0.1), "max_accuracy": np.float64(79.8),
              "class_counts": np.arange(3),
              "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]},
              "epoch": 3}, path, _use_new_zipfile_serialization=zip_format)
  monkeypatch.undo()   # the reader must not need the class
  sd, src = io.read_state_dict(path)
  assert src.file_format == ("torch-zip" if zip_format else "torch-legacy")
  assert sorted(sd) == ["n", "t", "w"] and sd["n"].dtype == np.int64 and sd["n"] == 7
  np.testing.assert_array_equal(sd["w"], w.to(torch.bfloat16).float().numpy())
  np.testing.assert_array_equal(sd["t"], w.numpy().T)   # a strided view of a shared storage
  assert src.container == "checkpoint['model']"
  assert ("global yacs.config.CfgNode (replaced by an inert placeholder)" in src.skipped
          and "global argparse.Namespace (replaced by an inert placeholder)" in src.skipped)
  assert "checkpoint['max_accuracy'] (float64, not weights)" in src.skipped   # numpy: real
  assert "checkpoint['class_counts'] (ndarray, not weights)" in src.skipped
  assert any("no code from the file was executed" in n for n in src.notes)


def test_torchscript_state_dict_equals_torch_jit_load(tmp_path):
  """Parameters and buffers as declared in code/, plain tensor attributes excluded."""
  torch = pytest.importorskip("torch")

  class Block(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.fc = torch.nn.Linear(3, 2)
      self.register_buffer("scale", torch.tensor([2.0, 3.0]))
      self.mask = torch.ones(2)          # an attribute, not in the state dict
      self.p = torch.nn.Parameter(torch.arange(4.).reshape(2, 2).to(torch.bfloat16))

    def forward(self, x):
      return self.fc(x) * self.scale * self.mask + self.p.float().sum()

  path = str(tmp_path / "scripted.pt")
  import warnings
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    torch.jit.save(torch.jit.script(torch.nn.Sequential(Block(), torch.nn.ReLU())), path)
    reference = torch.jit.load(path).state_dict()
  sd, src = io.read_state_dict(path)
  assert src.file_format == "torchscript" and list(sd) == list(reference)
  assert "0.mask" not in sd
  for k, v in reference.items():
    np.testing.assert_array_equal(sd[k], v.float().numpy(), err_msg=k)


def test_plain_weights_only_pickles_take_the_safe_path(tmp_path):
  torch = pytest.importorskip("torch")
  path = str(tmp_path / "ddp.pt")
  torch.save({"state_dict": {"module.a.weight": torch.arange(6.).reshape(2, 3)}}, path)
  sd, src = io.read_state_dict(path)
  assert list(sd) == ["a.weight"] and src.stripped_prefix == "module."
  assert src.notes == [] and src.skipped == [] and src.container == "checkpoint['state_dict']"


def test_safetensors_bf16_fp16_read_with_safetensors_numpy(tmp_path):
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
  save_file({"f8": x.astype(ml_dtypes.float8_e4m3fn)}, path)   # numpy has no float8 dtype
  with pytest.raises(io.UnreadableFileError, match=r"tensor 'f8' has safetensors dtype F8_E4M3"):
    io.read_state_dict(path)


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
