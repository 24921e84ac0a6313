"""CLIP files in every accepted layout -> `python -m convert clip` -> UniFormerV2 = open_clip.

Reference: open_clip's ``VisionTransformer`` with OpenAI's layout and QuickGELU, built offline with
random weights. After conversion the local / global UniBlocks are at their zero init, so

* the backbone's per-frame CLS token after the last resblock equals open_clip's token before
  ``ln_post`` (with temporal downsampling: frames 0, 2, ... -- the centre slot of each inflated
  3xpxp tubelet), and
* the logits are ``proj(LN(0.5 * 0 + 0.5 * mean_t CLS_t))`` (``balance`` = 0 -> weight 0.5, the
  query stays 0 through identity global blocks).

Tolerance: fp32 max |Δ| ≤ 1e-4 at ``jax.default_matmul_precision('highest')`` (the project bound;
XLA and torch sum in different orders; measured errors are ~1e-6).
"""

import contextlib
import io as io_lib
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
open_clip_model = pytest.importorskip("open_clip.model")

from convert import clip, common, io  # noqa: E402
from convert.__main__ import main  # noqa: E402
from vidjax import models  # noqa: E402
from vidjax.models import checkpoint  # noqa: E402

# Building the TorchScript fixture: torch.jit is deprecated in torch 2.14, and tracing warns.
pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit"),
              pytest.mark.filterwarnings("ignore:Converting a tensor to a Python boolean")]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "uniformerv2", "tiny_test.py")  # t-down + local MHRA
TOL = 1e-4
LAYERS, WIDTH, PATCH, RES = 4, 64, 8, 32


@pytest.fixture(scope="module")
def clip_model():
  """A tiny OpenAI-layout CLIP (QuickGELU), LayerNorms off their 1/0 init."""
  torch.manual_seed(0)
  m = open_clip_model.CLIP(
      16, open_clip_model.CLIPVisionCfg(layers=LAYERS, width=WIDTH, head_width=16,
                                        patch_size=PATCH, image_size=RES),
      open_clip_model.CLIPTextCfg(context_length=8, vocab_size=50, width=32, heads=2, layers=1),
      quick_gelu=True).eval()
  with torch.no_grad():
    for name, p in m.named_parameters():
      if "ln_" in name:
        p.copy_(torch.rand_like(p) + 0.5 if name.endswith("weight") else 0.1 * torch.randn_like(p))
  return m


def _hf_layout(sd: dict) -> dict:
  """The same weights under Hugging Face CLIPModel names (transformers' modeling_clip)."""
  out = {"vision_model.embeddings.class_embedding": sd["visual.class_embedding"],
         "vision_model.embeddings.patch_embedding.weight": sd["visual.conv1.weight"],
         "vision_model.embeddings.position_embedding.weight": sd["visual.positional_embedding"],
         "vision_model.embeddings.position_ids": np.arange(
             sd["visual.positional_embedding"].shape[0], dtype=np.int64)[None],
         "vision_model.pre_layrnorm.weight": sd["visual.ln_pre.weight"],
         "vision_model.pre_layrnorm.bias": sd["visual.ln_pre.bias"],
         "vision_model.post_layernorm.weight": sd["visual.ln_post.weight"],
         "vision_model.post_layernorm.bias": sd["visual.ln_post.bias"],
         "visual_projection.weight": sd["visual.proj"].T,
         "text_projection.weight": sd["text_projection"].T, "logit_scale": sd["logit_scale"],
         "text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"]}
  for i in range(LAYERS):
    src, dst = f"visual.transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}."
    for part, w in zip("qkv", np.split(sd[src + "attn.in_proj_weight"], 3)):
      out[dst + f"self_attn.{part}_proj.weight"] = w
    for part, b in zip("qkv", np.split(sd[src + "attn.in_proj_bias"], 3)):
      out[dst + f"self_attn.{part}_proj.bias"] = b
    for ours, hf in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"),
                     ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
      for s in ("weight", "bias"):
        out[dst + f"{hf}.{s}"] = sd[src + f"{ours}.{s}"]
  return out


@pytest.fixture(scope="module")
def files(clip_model, tmp_path_factory):
  """The same CLIP weights in each accepted layout."""
  d = tmp_path_factory.mktemp("clip_src")
  sd = {k: v.numpy() for k, v in clip_model.state_dict().items()}
  t = lambda m: {k: torch.from_numpy(np.asarray(v, order="C")) for k, v in m.items()}
  paths = {name: str(d / name) for name in (
      "vit_extracted.pth", "open_clip.pt", "open_clip.safetensors", "openai_jit.pt",
      "hf_clip.safetensors")}
  # UniFormerV2's extract_clip: visual.* without the prefix, proj / ln_post removed.
  visual = {k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")
            and k not in ("visual.proj", "visual.ln_post.weight", "visual.ln_post.bias")}
  torch.save(t(visual), paths["vit_extracted.pth"])
  # open_clip training checkpoint: DDP 'module.' prefix under 'state_dict', plus bookkeeping.
  torch.save({"epoch": 32, "name": "tiny", "state_dict": t({"module." + k: v for k, v in
                                                            sd.items()})}, paths["open_clip.pt"])
  io.write_safetensors(sd, paths["open_clip.safetensors"])
  io.write_safetensors(_hf_layout(sd), paths["hf_clip.safetensors"])
  # OpenAI's release: a TorchScript archive of the whole model with the metadata buffers
  # (input_resolution, context_length, vocab_size) that clip.load deletes.
  scripted = _traced_whole_clip(clip_model)
  torch.jit.save(scripted, paths["openai_jit.pt"])
  assert io.is_torchscript_archive(paths["openai_jit.pt"])
  return paths


def _traced_whole_clip(m):
  import copy
  m = copy.deepcopy(m)
  for name, value in (("input_resolution", RES), ("context_length", 8), ("vocab_size", 50)):
    if hasattr(m, name):
      delattr(m, name)   # open_clip keeps these as plain ints; OpenAI's archive as tensors
    m.register_buffer(name, torch.tensor(value))
  image = torch.zeros(1, 3, RES, RES)
  text = torch.zeros(1, 8, dtype=torch.long)
  return torch.jit.trace(m, (image, text), check_trace=False)


def _frames_reference(clip_model, clip_np: np.ndarray, frames) -> np.ndarray:
  """open_clip: per-frame CLS token after the last resblock (the input of ln_post)."""
  captured = {}
  hook = clip_model.visual.ln_post.register_forward_pre_hook(
      lambda mod, args: captured.setdefault("x", args[0]))
  b, t = clip_np.shape[:2]
  x = torch.from_numpy(clip_np[:, frames].reshape((-1,) + clip_np.shape[2:])).permute(0, 3, 1, 2)
  with torch.no_grad():
    clip_model.visual(x)
  hook.remove()
  return captured["x"][:, 0].numpy().reshape(b, len(frames), -1)


@nnx.jit
def _backbone_cls(model, clip):
  """The vidjax backbone's per-frame CLS after the last resblock (stem as Model.__call__)."""
  x = model.conv1(clip)
  b, t, h, w, c = x.shape
  x = x.reshape(b * t, h * w, c)
  cls = jnp.broadcast_to(model.class_embedding[...], (b * t, 1, c))
  x = jnp.concatenate([cls, x], axis=1) + model.positional_embedding[...]
  x, _ = model.transformer.backbone(model.ln_pre(x))
  return x[:, 0].reshape(b, t, c)


_forward = nnx.jit(lambda model, clip: model(clip))


def _parity(model, clip_model, frames, seed=0):
  cfg = model.cfg
  clip_np = np.random.default_rng(seed).standard_normal(
      (2, cfg.num_frames, cfg.image_size, cfg.image_size, 3)).astype(np.float32)
  ref = _frames_reference(clip_model, clip_np, frames)
  with jax.default_matmul_precision("highest"):
    feats = np.asarray(_backbone_cls(model, clip_np))
    logits = np.asarray(_forward(model, clip_np))
  feat_err = float(np.abs(feats - ref).max())
  # Head on 0.5 * mean_t CLS (query 0, sigmoid(0) = 0.5), in float64 numpy.
  z = 0.5 * ref.astype(np.float64).mean(axis=1)
  z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-5)
  head = model.transformer.proj
  z = z * np.asarray(head.norm.scale.get_value()) + np.asarray(head.norm.bias.get_value())
  want = z @ np.asarray(head.fc.kernel.get_value()) + np.asarray(head.fc.bias.get_value())
  assert np.abs(ref).max() > 0.1 and np.abs(want).max() > 1e-2
  return feat_err, float(np.abs(logits - want).max())


LAYOUTS = {"vit_extracted.pth": "clip-visual", "open_clip.pt": "clip-state-dict",
           "open_clip.safetensors": "clip-state-dict", "openai_jit.pt": "openai-torchscript",
           "hf_clip.safetensors": "hf-clip"}


def _convert_cli(src, out):
  buf = io_lib.StringIO()
  with contextlib.redirect_stdout(buf):
    rc = main(["clip", "--src", src, "--config", CONFIG, "--out", out])
  assert rc == 0, buf.getvalue()
  return buf.getvalue()


def test_every_layout_converts_to_one_tree_that_matches_open_clip(files, clip_model, tmp_path):
  """All five layouts -> CLI -> load give bit-identical trees; that tree is CLIP per frame."""
  reference = None
  for name, layout in LAYOUTS.items():
    out = str(tmp_path / name.replace(".", "_"))
    printed = _convert_cli(files[name], out)
    assert f"detected: {layout}" in printed, printed
    assert "inflated: 1" in printed and "center inflation into 3 time slots" in printed
    model, info = models.load(out)
    assert info["report"]["copied"] + info["report"]["inflated"] == 5 + 12 * LAYERS
    if name != "vit_extracted.pth":   # proj, ln_post (+ text tower) dropped, never copied
      assert info["report"]["dropped"] >= 3
    flat = checkpoint.flat_weights(model)
    if reference is None:
      reference, ref_model = flat, model
      continue
    assert sorted(flat) == sorted(reference)
    for k in reference:
      np.testing.assert_array_equal(flat[k], reference[k], err_msg=f"{name}: {k}")

  # Everything UniFormerV2 adds keeps its zero init; the CLIP kernel sits in the centre slot.
  zeros = [p for p in reference if p[-1] in ("temporal_cls_token", "balance")
           or ("dec" in p and ("out_proj" in p or "c_proj" in p))
           or ("pos_embed" in p and p[-2] == 3) or ("dpe" in p and p[-1] == "bias")]
  assert len(zeros) == 2 + 2 * 2 * 2 + 4 * 2 * 2 + 2
  for p in zeros:
    assert not np.any(reference[p]), p
  w2d = clip_model.visual.conv1.weight.detach().numpy()   # (C, 3, p, p)
  kernel = reference[("conv1", "kernel")]                  # (3, p, p, 3, C)
  np.testing.assert_array_equal(kernel[1], w2d.transpose(2, 3, 1, 0))
  assert not kernel[0].any() and not kernel[2].any()

  assert ref_model.cfg.temporal_downsample and not ref_model.cfg.no_lmhra
  feat_err, logit_err = _parity(ref_model, clip_model, frames=[0, 2])
  print(f"clip (5 layouts) -> uniformerv2 (t-down, centre inflation, local+global at zero init): "
        f"max |dCLS| = {feat_err:.2e}, max |dlogits| = {logit_err:.2e} (tol {TOL})")
  assert feat_err <= TOL and logit_err <= TOL


def test_k400_design_without_downsampling_matches_open_clip(files, clip_model):
  config = common.load_config_file(CONFIG)
  config.model.update(dict(temporal_downsample=False, no_lmhra=True))
  model, report = clip.convert(files["hf_clip.safetensors"], config)
  assert report.inflated[0].endswith("(reshaped)")
  model.eval()
  feat_err, logit_err = _parity(model, clip_model, frames=[0, 1, 2, 3], seed=1)
  print(f"clip -> uniformerv2 (no t-down, global blocks only): max |dCLS| = {feat_err:.2e}, "
        f"max |dlogits| = {logit_err:.2e} (tol {TOL})")
  assert feat_err <= TOL and logit_err <= TOL


def test_average_inflation_spreads_the_kernel_over_time():
  w2d = np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32)
  w3d = clip.inflate(w2d, 3, "average")
  assert w3d.shape == (4, 3, 3, 2, 2)
  for t in range(3):
    np.testing.assert_allclose(w3d[:, :, t], w2d / 3, rtol=1e-7)
  centre = clip.inflate(w2d, 3, "center")
  np.testing.assert_array_equal(centre[:, :, 1], w2d)
  assert not centre[:, :, 0].any() and not centre[:, :, 2].any()


def test_wrong_backbone_and_tampered_files_fail_naming_the_keys(files, tmp_path, monkeypatch,
                                                               capsys):
  # ViT-L/14 weights into the B/16 config: zero-cost arrays, only shapes matter.
  l14 = {k: np.broadcast_to(np.float32(0), s) for k, s in (
      [("class_embedding", (1024,)), ("positional_embedding", (257, 1024)),
       ("conv1.weight", (1024, 3, 14, 14)), ("ln_pre.weight", (1024,)), ("ln_pre.bias", (1024,))]
      + [(f"transformer.resblocks.{i}.attn.in_proj_weight", (3072, 1024)) for i in range(24)])}
  monkeypatch.setattr(common, "read_source",
                      lambda path: (l14, io.Source(path=path, sha256="0", file_format="test")))
  b16 = os.path.join(ROOT, "configs", "uniformerv2", "k400_b16_8x224.py")
  with pytest.raises(common.ConversionError) as e:
    clip.convert("vit_l14.pth", b16)
  assert "ViT-L/14 at 224 px (width 1024, 24 layers" in str(e.value)
  assert "ViT-B/16 at 224 px (width 768, 12 layers" in str(e.value)
  monkeypatch.undo()

  sd, _ = io.read_state_dict(files["vit_extracted.pth"])
  sd["transformer.resblocks.1.attn.in_proj_wieght"] = sd.pop(
      "transformer.resblocks.1.attn.in_proj_weight")
  sd["transformer.resblocks.2.mlp.c_fc.bias"] = sd["transformer.resblocks.2.mlp.c_fc.bias"][:7]
  src = str(tmp_path / "tampered.safetensors")
  io.write_safetensors(sd, src)
  out = str(tmp_path / "out")
  rc = main(["clip", "--src", src, "--config", CONFIG, "--out", out])
  err = capsys.readouterr().err
  assert rc == 2 and not os.path.exists(out)
  assert "unexpected key transformer.resblocks.1.attn.in_proj_wieght (192, 64)" in err
  assert "missing key transformer.resblocks.1.attn.in_proj_weight (expected (192, 64))" in err
  assert ("shape mismatch transformer.resblocks.2.mlp.c_fc.bias: checkpoint (7) vs model (256)"
          in err)
  assert not [f for f in os.listdir(tmp_path) if f.startswith("out")]
