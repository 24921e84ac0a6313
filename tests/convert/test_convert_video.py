"""Released video checkpoints: every official layout converts strictly and exports back bit-exactly.

The state dicts are built from the layout tables (``official_shapes``) with random tensors, saved
the way the official code / re-hosts save them, converted with ``python -m convert`` and exported
with ``python -m convert export``; tampered files must fail naming every offending key and leave
no output behind.
"""

import argparse
import contextlib
import io as io_lib
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from convert import common, io, uniformerv2, video_focalnet  # noqa: E402
from convert import uniformerv2_layout, video_focalnet_layout  # noqa: E402
from convert.__main__ import main  # noqa: E402
from vidjax import models  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
U_CONFIG = os.path.join(ROOT, "configs", "uniformerv2", "tiny_test.py")     # with BatchNorm
F_CONFIG = os.path.join(ROOT, "configs", "video_focalnet", "tiny_test.py")
U_HEAD = 7   # class count of the "released" files: differs from the config's 10 on purpose


def _random_state_dict(shapes, seed):
  rng = np.random.default_rng(seed)
  sd = {}
  for k, s in shapes.items():
    if k.endswith("num_batches_tracked"):
      sd[k] = np.asarray(rng.integers(1, 10_000), np.int64)
    elif k.endswith("running_var"):
      sd[k] = rng.uniform(0.5, 2.0, s).astype(np.float32)
    else:
      sd[k] = rng.standard_normal(s).astype(np.float32)
  return sd


def _torch(sd):
  return {k: torch.from_numpy(np.asarray(v, order="C")) for k, v in sd.items()}


def _run(argv):
  out, err = io_lib.StringIO(), io_lib.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    rc = main(argv)
  return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def uniformer_sd():
  config = common.load_config_file(U_CONFIG)
  config.model.num_classes = U_HEAD
  _, cfg = common.architecture(config.model)
  return _random_state_dict(uniformerv2_layout.official_shapes(cfg), seed=0)


@pytest.fixture(scope="module")
def uniformer_files(uniformer_sd, tmp_path_factory):
  d = tmp_path_factory.mktemp("uniformer_src")
  sd = uniformer_sd
  mm = {}
  for k, v in sd.items():
    k = k.replace("backbone.transformer.proj.0.", "backbone.transformer.norm.")
    mm[k.replace("backbone.transformer.proj.2.", "cls_head.fc_cls.")] = v
  paths = {n: str(d / n) for n in ("zoo.pyth", "training.pyth", "mmaction2.pth",
                                   "flat.safetensors")}
  torch.save(_torch(sd), paths["zoo.pyth"])
  torch.save({"epoch": 22, "model_state": _torch(sd), "optimizer_state": {"state": {}},
              "cfg": argparse.Namespace(NUM_GPUS=8)}, paths["training.pyth"])
  torch.save({"meta": {"epoch": 5, "mmengine_version": "0.7"}, "state_dict": _torch(mm)},
             paths["mmaction2.pth"])
  io.write_safetensors(sd, paths["flat.safetensors"])
  return paths


LAYOUTS = {"zoo.pyth": "official UniFormerV2", "training.pyth": "official UniFormerV2",
           "mmaction2.pth": "mmaction2", "flat.safetensors": "official UniFormerV2"}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_uniformerv2_layouts_convert_and_export_bit_exactly(uniformer_sd, uniformer_files, name,
                                                           tmp_path):
  out = str(tmp_path / "ckpt")
  rc, printed, err = _run(["uniformerv2", "--src", uniformer_files[name], "--config", U_CONFIG,
                           "--out", out])
  assert rc == 0, err
  assert f"detected: {LAYOUTS[name]}" in printed
  assert f"model.num_classes=10 -> {U_HEAD}" in printed
  if name == "training.pyth":
    assert "checkpoint['model_state']" in printed and "argparse.Namespace" in printed
  model, info = models.load(out)
  assert model.cfg.num_classes == U_HEAD and info["model"]["num_classes"] == U_HEAD
  assert info["source"]["sha256"] == io.sha256_of(uniformer_files[name])
  # BatchNorm running statistics became BatchStats.
  mean = model.transformer.resblocks[1].lmhra2.pos_embed.layers[0].mean.get_value()
  np.testing.assert_array_equal(
      np.asarray(mean),
      uniformer_sd["backbone.transformer.resblocks.1.lmhra2.pos_embed.0.running_mean"])

  for suffix in (".pth", ".safetensors"):
    back_path = str(tmp_path / f"export{suffix}")
    rc, _, err = _run(["export", "--src", out, "--out", back_path])
    assert rc == 0, err
    back, _ = io.read_state_dict(back_path)
    if suffix == ".pth":   # the official key order, flat backbone.* (safetensors sorts keys)
      assert list(back) == list(uniformer_sd)
    assert sorted(back) == sorted(uniformer_sd)
    for k, v in uniformer_sd.items():
      assert back[k].dtype == v.dtype, k
      np.testing.assert_array_equal(back[k], v, err_msg=k)


@pytest.fixture(scope="module")
def focalnet_sd():
  config = common.load_config_file(F_CONFIG)
  _, cfg = common.architecture(config.model)
  return _random_state_dict(video_focalnet_layout.official_shapes(cfg), seed=1)


def test_video_focalnet_release_converts_and_exports_bit_exactly(focalnet_sd, tmp_path):
  src = str(tmp_path / "video-focalnet_tiny_k400.pth")
  # utils.save_checkpoint: weights under 'model' beside optimizer state and a pickled config.
  torch.save({"model": _torch(focalnet_sd), "optimizer": {"state": {}, "param_groups": []},
              "max_accuracy": 79.8, "epoch": 119, "config": argparse.Namespace(MODEL="tiny")},
             src)
  out = str(tmp_path / "ckpt")
  labels = tmp_path / "labels.json"
  labels.write_text('["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]')
  rc, printed, err = _run(["video-focalnet", "--src", src, "--config", F_CONFIG, "--out", out,
                           "--labels", str(labels)])
  assert rc == 0, err
  assert "detected: official Video-FocalNet" in printed and "checkpoint['model']" in printed
  assert "argparse.Namespace" in printed and "no code from the file was executed" in printed
  model, info = models.load(out)
  assert info["labels"][9] == "j" and not info.get("torch_buffers")

  back_pth = str(tmp_path / "back.pth")
  assert _run(["export", "--src", out, "--out", back_pth])[0] == 0
  obj = torch.load(back_pth, weights_only=True)
  assert set(obj) == {"model"} and list(obj["model"]) == list(focalnet_sd)
  for k, v in focalnet_sd.items():
    np.testing.assert_array_equal(obj["model"][k].numpy(), v, err_msg=k)
  back_st = str(tmp_path / "back.safetensors")
  assert _run(["export", "--src", out, "--out", back_st])[0] == 0
  back, _ = io.read_state_dict(back_st)
  for k, v in focalnet_sd.items():
    np.testing.assert_array_equal(back[k], v, err_msg=k)


def test_tampered_uniformerv2_fails_naming_every_key_and_writes_nothing(uniformer_sd, tmp_path):
  sd = dict(uniformer_sd)
  sd["backbone.transformer.dec.1.ln_3.wieght"] = sd.pop("backbone.transformer.dec.1.ln_3.weight")
  sd["backbone.transformer.dpe.0.weight"] = sd["backbone.transformer.dpe.0.weight"][:, :, :2]
  src = str(tmp_path / "tampered.safetensors")
  io.write_safetensors(sd, src)
  out = str(tmp_path / "out")
  rc, _, err = _run(["uniformerv2", "--src", src, "--config", U_CONFIG, "--out", out])
  assert rc == 2
  assert "unexpected key backbone.transformer.dec.1.ln_3.wieght (64)" in err
  assert "missing key backbone.transformer.dec.1.ln_3.weight (expected (64))" in err
  assert ("shape mismatch backbone.transformer.dpe.0.weight: checkpoint (64, 1, 2, 3, 3) vs "
          "model (64, 1, 3, 3, 3)") in err
  assert not any(f.startswith("out") for f in os.listdir(tmp_path))


def test_k400_file_into_sthsth_config_lists_the_family_difference(uniformer_sd, tmp_path):
  sd = {k: v for k, v in uniformer_sd.items() if ".lmhra" not in k}   # no local MHRA
  src = str(tmp_path / "k400_like.safetensors")
  io.write_safetensors(sd, src)
  with pytest.raises(common.ConversionError) as e:
    uniformerv2.convert(src, U_CONFIG, out=str(tmp_path / "out"))
  msg = str(e.value)
  assert "missing key backbone.transformer.resblocks.3.lmhra2.pos_embed.0.running_var" in msg
  assert "config only:     backbone.transformer.resblocks.{n}.lmhra1.pos_embed.{n}.bias x" in msg
  assert not os.path.exists(tmp_path / "out")


def test_l14_release_into_b16_config_fails_with_both_shapes(monkeypatch):
  config = common.load_config_file(os.path.join(ROOT, "configs", "uniformerv2",
                                                "k400_k710_l14_8x224.py"))
  _, cfg = common.architecture(config.model)
  l14 = {k: np.broadcast_to(np.float32(0), s)   # shapes only: no memory
         for k, s in uniformerv2_layout.official_shapes(cfg).items()}
  monkeypatch.setattr(common, "read_source",
                      lambda path: (l14, io.Source(path=path, sha256="0", file_format="test")))
  b16 = os.path.join(ROOT, "configs", "uniformerv2", "k400_b16_8x224.py")
  with pytest.raises(common.ConversionError) as e:
    uniformerv2.convert("k400_uniformerv2_l14_8x224.pyth", b16)
  msg = str(e.value)
  assert ("shape mismatch backbone.positional_embedding: checkpoint (257, 1024) vs model "
          "(197, 768)") in msg
  assert "unexpected key backbone.transformer.resblocks.23.ln_2.bias (1024)" in msg
  assert "shape mismatch backbone.conv1.weight: checkpoint (1024, 3, 1, 14, 14)" in msg


def test_wrong_family_commands_point_to_the_right_one(uniformer_sd, focalnet_sd, tmp_path):
  u = str(tmp_path / "u.safetensors")
  io.write_safetensors(uniformer_sd, u)
  with pytest.raises(common.ConversionError, match="python -m convert uniformerv2"):
    from convert import clip
    clip.convert(u, U_CONFIG)
  image = {k: v for k, v in focalnet_sd.items() if "_temporal" not in k}
  f = str(tmp_path / "f.safetensors")
  io.write_safetensors(image, f)
  with pytest.raises(common.ConversionError, match="python -m convert focalnet"):
    video_focalnet.convert(f, F_CONFIG)


TORCH_FREE = r"""
import sys
sys.modules["torch"] = None          # any `import torch` now raises ImportError
from convert.__main__ import main
assert main(["uniformerv2", "--src", sys.argv[1], "--config", sys.argv[2],
             "--out", sys.argv[3]]) == 0
assert main(["export", "--src", sys.argv[3], "--out", sys.argv[3] + ".safetensors"]) == 0
assert main(["uniformerv2", "--src", sys.argv[4], "--config", sys.argv[2],
             "--out", sys.argv[3] + "_pth"]) == 2
assert "torch" not in sys.modules or sys.modules["torch"] is None
print("TORCH-FREE OK")
"""


def test_safetensors_convert_and_export_without_torch(uniformer_sd, uniformer_files, tmp_path):
  out = str(tmp_path / "ckpt")
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
             JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-c", TORCH_FREE, uniformer_files["flat.safetensors"],
                      U_CONFIG, out, uniformer_files["zoo.pyth"]],
                     capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
  assert "TORCH-FREE OK" in r.stdout, r.stdout + r.stderr
  assert "reading PyTorch pickles (.pt/.pth/.pyth/.bin) needs torch" in r.stderr
  back, _ = io.read_state_dict(out + ".safetensors")
  for k, v in uniformer_sd.items():
    np.testing.assert_array_equal(back[k], v, err_msg=k)
