"""ImageNet FocalNet files -> `python -m convert focalnet` -> vidjax.models.load: logit parity.

Reference: timm's FocalNet (built offline, random weights) on each frame. With the temporal branch
made neutral (h_temporal kernel 0, bias 1, so the temporal modulator is exactly 1) Video-FocalNet
is the image network per frame, averaged over T before the head (reference §1.4); the
``spatial_only`` design needs no neutralisation. Tolerance: fp32 max |Δ| ≤ 1e-4 at
``jax.default_matmul_precision('highest')`` (the project's parity bound; XLA and torch sum in
different orders, measured errors are ~1e-6).
"""

import argparse
import contextlib
import io as io_lib
import os

import jax
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
timm_focalnet = pytest.importorskip("timm.models.focalnet")

from convert import common, focalnet, io  # noqa: E402
from convert.__main__ import main  # noqa: E402
from vidjax import models  # noqa: E402
from vidjax.models import checkpoint  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "video_focalnet", "tiny_test.py")
TOL = 1e-4


def _timm_model(levels=(2, 2, 2, 2), seed=0):
  torch.manual_seed(seed)
  m = timm_focalnet.FocalNet(depths=(1, 1, 2, 1), embed_dim=16, num_classes=7,
                             focal_levels=levels, drop_path_rate=0.0).eval()
  with torch.no_grad():   # LayerNorms off their 1/0 init, so a swapped or dropped one shows
    for name, p in m.named_parameters():
      if "norm" in name:
        p.copy_(torch.rand_like(p) + 0.5 if name.endswith("weight") else 0.1 * torch.randn_like(p))
  return m


@pytest.fixture(scope="module")
def timm_model():
  return _timm_model()


@pytest.fixture(scope="module")
def files(timm_model, tmp_path_factory):
  """The same random weights in each accepted layout."""
  d = tmp_path_factory.mktemp("focalnet_src")
  timm_sd = {k: v.numpy() for k, v in timm_model.state_dict().items()}
  ms_sd = focalnet.timm_to_microsoft(timm_sd)
  paths = {
      # microsoft release format, plus a harmless non-tensor object beside the weights
      "microsoft.pth": {"model": {k: torch.from_numpy(v) for k, v in ms_sd.items()},
                        "args": argparse.Namespace(lr=0.1), "epoch": 300},
      "timm.pth": {k: torch.from_numpy(v) for k, v in timm_sd.items()},
  }
  out = {}
  for name, obj in paths.items():
    out[name] = str(d / name)
    torch.save(obj, out[name])
  out["timm.safetensors"] = str(d / "timm.safetensors")
  io.write_safetensors(timm_sd, out["timm.safetensors"])
  return out, timm_sd, ms_sd


def test_microsoft_layout_is_the_inverse_of_timms_filter(files, timm_model):
  """Our timm -> microsoft map, pushed through timm's own microsoft -> timm filter, is identity."""
  _, timm_sd, ms_sd = files
  assert "patch_embed.proj.weight" in ms_sd and "layers.0.downsample.proj.weight" in ms_sd
  assert ms_sd["layers.0.blocks.0.modulation.f.weight"].ndim == 2
  back = timm_focalnet.checkpoint_filter_fn(
      {"model": {k: torch.from_numpy(v) for k, v in ms_sd.items()}}, timm_model)
  assert sorted(back) == sorted(timm_sd)
  for k, v in back.items():
    np.testing.assert_array_equal(v.numpy(), timm_sd[k], err_msg=k)


def _reference_logits(timm_model, clip: np.ndarray, head_kernel, head_bias) -> np.ndarray:
  """timm per-frame pooled features (LN, mean over tokens), mean over T, then the given head."""
  b, t = clip.shape[:2]
  frames = torch.from_numpy(clip.reshape((b * t,) + clip.shape[2:])).permute(0, 3, 1, 2)
  with torch.no_grad():
    feats = timm_model.forward_head(timm_model.forward_features(frames), pre_logits=True)
  feats = feats.numpy().astype(np.float64).reshape(b, t, -1).mean(axis=1)
  return feats @ np.asarray(head_kernel, np.float64) + np.asarray(head_bias, np.float64)


def _set_neutral(model):
  """h_temporal: kernel 0, bias 1 -> the temporal modulator m_t is exactly 1 (stacked or not)."""
  state = nnx.state(model, nnx.Param)
  n = 0
  for path, var in nnx.to_flat_state(state):
    if "h_temporal" in map(str, path):
      v = var.get_value()
      var.set_value(np.ones_like(v) if path[-1] == "bias" else np.zeros_like(v))
      n += 1
  nnx.update(model, state)
  assert n > 0


_forward = nnx.jit(lambda model, clip: model(clip))


def _max_err(model, timm_model, seed=0):
  cfg = model.cfg
  clip = np.random.default_rng(seed).standard_normal(
      (2, cfg.num_frames, cfg.image_size, cfg.image_size, 3)).astype(np.float32)
  with jax.default_matmul_precision("highest"):
    got = np.asarray(_forward(model, clip))
  head_kernel = np.asarray(model.head.kernel.get_value())
  head_bias = np.asarray(model.head.bias.get_value())
  want = _reference_logits(timm_model, clip, head_kernel, head_bias)
  assert np.abs(want).max() > 1e-2   # not a degenerate comparison
  return float(np.abs(got - want).max())


LAYOUTS = {"microsoft.pth": "microsoft", "timm.pth": "timm", "timm.safetensors": "timm"}


def test_every_layout_converts_to_one_tree_that_matches_timm(files, timm_model, tmp_path):
  """All layouts -> CLI (with labels) -> load give bit-identical trees; that tree is timm's
  FocalNet per frame once the temporal modulator is neutral."""
  paths, _, _ = files
  labels = tmp_path / "labels.txt"
  labels.write_text("\n".join(f"class {i}" for i in range(10)) + "\n")
  reference = None
  for name, layout in LAYOUTS.items():
    out = str(tmp_path / name.replace(".", "_"))
    buf = io_lib.StringIO()
    with contextlib.redirect_stdout(buf):
      rc = main(["focalnet", "--src", paths[name], "--config", CONFIG, "--out", out,
                 "--labels", str(labels)])
    printed = buf.getvalue()
    assert rc == 0, printed
    assert f"detected: {layout}" in printed
    if name == "microsoft.pth":
      assert "argparse.Namespace" in printed and "no code from the file was executed" in printed
    assert sorted(os.listdir(out)) == ["report.json", "state", "vidjax.json"]
    model, info = models.load(out)
    assert info["layout"].startswith(layout) and info["labels"][3] == "class 3"
    assert info["report"]["copied"] == 98 and info["report"]["initialised"] == 30
    assert info["report"]["reinitialised"] == 2 and info["report"]["dropped"] == 2
    flat = checkpoint.flat_weights(model)
    if reference is None:
      reference, ref_model = flat, model
      continue
    for k in reference:
      np.testing.assert_array_equal(flat[k], reference[k], err_msg=f"{name}: {k}")

  # The head is re-drawn trunc_normal(.02), the bias too (official main.py).
  w = reference[("head", "kernel")]
  b = reference[("head", "bias")]
  assert 0.01 < w.std() < 0.03 and 0 < np.abs(b).max() < 0.1

  _set_neutral(ref_model)
  err = _max_err(ref_model, timm_model)
  print(f"focalnet (3 layouts) -> CLI -> load, temporal branch neutral: max |dlogits| = "
        f"{err:.2e} (tol {TOL})")
  assert err <= TOL


def test_spatial_only_design_matches_timm_without_neutralising(files, timm_model):
  paths, _, _ = files
  config = common.load_config_file(CONFIG)
  config.model.design = "spatial_only"
  model, report = focalnet.convert(paths["timm.safetensors"], config)
  assert not report.initialised   # the image design has no temporal keys
  model.eval()
  err = _max_err(model, timm_model, seed=1)
  print(f"focalnet spatial_only: max |dlogits| = {err:.2e} (tol {TOL})")
  assert err <= TOL


def test_tubelet_stem_is_the_image_kernel_repeated_over_time_and_divided(files, timm_model):
  """tubelet_size=2: the stem kernel is the ImageNet kernel repeated over 2 frames / 2 (as the
  official main.py inflates it). So a 4-frame clip whose frames come in identical pairs
  [a, a, b, b] gives, with the temporal modulator neutral, timm's per-frame network on [a, b]."""
  paths, _, ms_sd = files
  config = common.load_config_file(CONFIG)
  config.model.tubelet_size = 2
  model, report = focalnet.convert(paths["timm.safetensors"], config)
  assert any(r.startswith("patch_embed.proj.weight") for r in report.inflated)
  kernel = np.asarray(model.patch_embed.proj.kernel.get_value())      # (2, 4, 4, 3, C) DHWIO
  image = ms_sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0)      # (4, 4, 3, C) HWIO
  np.testing.assert_array_equal(kernel, np.stack([image / 2, image / 2]).astype(np.float32))

  model.eval()
  _set_neutral(model)
  cfg = model.cfg
  pairs = np.random.default_rng(2).standard_normal(
      (2, cfg.num_frames // 2, cfg.image_size, cfg.image_size, 3)).astype(np.float32)
  clip = np.repeat(pairs, 2, axis=1)                                  # [a, a, b, b]
  with jax.default_matmul_precision("highest"):
    got = np.asarray(_forward(model, clip))
  want = _reference_logits(timm_model, pairs, np.asarray(model.head.kernel.get_value()),
                           np.asarray(model.head.bias.get_value()))
  err = float(np.abs(got - want).max())
  print(f"focalnet tubelet 2, paired frames vs timm per frame: max |dlogits| = {err:.2e}")
  assert np.abs(want).max() > 1e-2 and err <= TOL


def test_lrf_weights_are_refused(tmp_path, capsys):
  lrf = _timm_model(levels=(3, 3, 3, 3))
  src = str(tmp_path / "focalnet_tiny_lrf.pth")
  torch.save({"model": lrf.state_dict()}, src)
  out = str(tmp_path / "out")
  rc = main(["focalnet", "--src", src, "--config", CONFIG, "--out", out])
  err = capsys.readouterr().err
  assert rc == 2 and not os.path.exists(out)
  assert "lrf" in err and "focal levels [3, 3, 3, 3]" in err


def test_wrong_width_and_video_checkpoint_fail_loudly(files, tmp_path):
  _, timm_sd, _ = files
  bad = dict(timm_sd)
  bad["stem.proj.weight"] = bad["stem.proj.weight"][:, :, :2]   # (16, 3, 2, 4)
  bad["layers.1.blocks.0.mlp.fc1.bias"] = bad.pop("layers.1.blocks.0.mlp.fc1.bias")[:5]
  del bad["norm.weight"]
  src = str(tmp_path / "bad.safetensors")
  io.write_safetensors(bad, src)
  with pytest.raises(common.ConversionError) as e:
    focalnet.convert(src, CONFIG, out=str(tmp_path / "out"))
  msg = str(e.value)
  for key in ("patch_embed.proj.weight", "layers.1.blocks.0.mlp.fc1.bias", "norm.weight"):
    assert key in msg
  assert "(16, 3, 2, 4)" in msg and not os.path.exists(tmp_path / "out")

  video = dict(timm_sd, **{"layers.0.blocks.0.modulation.h_temporal.bias": np.zeros(16,
                                                                                   np.float32)})
  io.write_safetensors(video, src)
  with pytest.raises(common.ConversionError, match="video-focalnet"):
    focalnet.convert(src, CONFIG)
