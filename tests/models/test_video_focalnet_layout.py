"""Official Video-FocalNet / image-FocalNet key table, strict conversion, and timm parity."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from convert import video_focalnet_layout as layout
from vidjax import models
from vidjax.models import video_focalnet as vf

# Two stages keep XLA compiles short (CPU CI); every stage-level code path is still exercised.
TINY = dict(depths=(1, 2), embed_dim=16, num_classes=7, num_frames=4, image_size=32,
            focal_levels=(2, 2), focal_windows=(3, 3))


def _abstract(cfg):
  with nnx.use_eager_sharding(False):
    return nnx.eval_shape(lambda: vf.Model(cfg, rngs=nnx.Rngs(0)))


def _model_paths(model) -> dict:
  state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
  return {p: tuple(v.get_value().shape) for p, v in nnx.to_flat_state(state)}


def _load(model, flat):
  state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
  items = list(nnx.to_flat_state(state))
  assert {p for p, _ in items} == set(flat)
  for path, var in items:
    assert tuple(var.get_value().shape) == flat[path].shape, path
    var.set_value(jnp.asarray(flat[path]))
  nnx.update(model, state)
  return models.fill_rest(model)


def _random_sd(shapes, seed=0):
  rng = np.random.default_rng(seed)
  return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def test_official_table_tiny_has_284_keys_with_reference_shapes():
  shapes = layout.official_shapes(vf.Config(variant="tiny"))
  assert len(shapes) == 284
  assert sum(int(np.prod(s)) for s in shapes.values()) == 49_553_272
  assert len(layout.official_shapes(vf.Config(variant="small"))) == 548
  assert len(layout.official_shapes(vf.Config(variant="base"))) == 548
  spot = {  # reference §1.7
      "patch_embed.proj.weight": (96, 3, 4, 4),
      "patch_embed.norm.bias": (96,),
      "layers.0.blocks.1.modulation.f.weight": (195, 96),
      "layers.1.blocks.0.modulation.f.bias": (387,),
      "layers.2.blocks.5.modulation.f.weight": (771, 384),
      "layers.3.blocks.1.modulation.f.weight": (1539, 768),
      "layers.2.blocks.0.modulation.h.weight": (384, 384, 1, 1),
      "layers.2.blocks.0.modulation.proj.weight": (384, 384),
      "layers.0.blocks.0.modulation.focal_layers.0.0.weight": (96, 1, 3, 3),
      "layers.0.blocks.0.modulation.focal_layers.1.0.weight": (96, 1, 5, 5),
      "layers.3.blocks.0.modulation.f_temporal.weight": (771, 768),
      "layers.0.blocks.0.modulation.f_temporal.bias": (99,),
      "layers.1.blocks.1.modulation.h_temporal.weight": (192, 192, 1),
      "layers.2.blocks.3.modulation.focal_layers_temporal.0.0.weight": (384, 384, 3),
      "layers.2.blocks.3.modulation.focal_layers_temporal.1.0.weight": (384, 384, 5),
      "layers.1.blocks.0.mlp.fc1.weight": (768, 192),
      "layers.1.blocks.0.mlp.fc2.weight": (192, 768),
      "layers.2.downsample.proj.weight": (768, 384, 2, 2),
      "layers.2.downsample.norm.weight": (768,),
      "norm.weight": (768,),
      "head.weight": (400, 768),
      "head.bias": (400,),
  }
  for k, s in spot.items():
    assert shapes[k] == s, k
  assert "layers.3.downsample.proj.weight" not in shapes
  image = layout.image_focalnet_shapes(vf.Config(variant="tiny"))
  assert len(image) == 212 and image["head.weight"] == (1000, 768)
  assert sum(int(np.prod(s)) for s in image.values()) == 28_427_116
  assert set(image) == {k for k in shapes if "_temporal" not in k and "head" not in k} | {
      "head.weight", "head.bias"}


@pytest.mark.parametrize("overrides", [
    {}, dict(scan_layers=True), dict(design="spatial_only"),
    dict(use_layerscale=True, use_postln_in_modulation=True, use_conv_embed=True,
         tubelet_size=2, scan_layers=True)])
def test_table_covers_model_paths_and_round_trips_bit_exact(overrides):
  cfg = vf.Config(**TINY, **overrides)
  model = _abstract(cfg)
  paths = _model_paths(model)
  shapes = (layout.image_focalnet_shapes(cfg, cfg.num_classes) if cfg.design == "spatial_only"
            else layout.official_shapes(cfg))
  sd = _random_sd(shapes, seed=1)
  flat = layout.to_flax(sd, cfg)
  assert {p: v.shape for p, v in flat.items()} == paths  # exactly the model's param paths
  _load(model, flat)
  state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
  back = layout.from_flax({p: np.asarray(v.get_value()) for p, v in nnx.to_flat_state(state)},
                          cfg)
  assert list(back) == list(sd)
  for k in sd:
    assert back[k].dtype == sd[k].dtype and np.array_equal(back[k], sd[k]), k


def test_strict_errors_name_every_bad_key():
  cfg = vf.Config(**TINY)
  sd = _random_sd(layout.official_shapes(cfg))
  tampered = dict(sd)
  tampered["layers.0.blocks.0.modulation.ff.weight"] = tampered.pop(
      "layers.0.blocks.0.modulation.f.weight")
  tampered["layers.1.blocks.0.modulation.h_temporal.weight"] = np.zeros((32, 32, 3), np.float32)
  with pytest.raises(ValueError) as e:
    layout.to_flax(tampered, cfg)
  msg = str(e.value)
  assert "unexpected keys ['layers.0.blocks.0.modulation.ff.weight']" in msg
  assert "missing keys ['layers.0.blocks.0.modulation.f.weight']" in msg
  assert ("layers.1.blocks.0.modulation.h_temporal.weight: expected (32, 32, 1), found "
          "(32, 32, 3)") in msg
  # A Video-FocalNet-S state dict into a T config: the 12 extra stage-3 blocks are named.
  small = {k: np.zeros(s, np.float32)
           for k, s in layout.official_shapes(vf.Config(variant="small")).items()}
  with pytest.raises(ValueError) as e:
    layout.to_flax(small, vf.Config(variant="tiny"))
  extra = re.findall(r"'(layers\.2\.blocks\.(\d+)\.[^']*)'", str(e.value))
  assert {int(j) for _, j in extra} == set(range(6, 18))
  assert "missing keys" not in str(e.value)
  # Unmapped designs are refused with the field named.
  with pytest.raises(ValueError, match="model.design='divided'"):
    layout.to_flax(sd, vf.Config(**TINY, design="divided"))
  with pytest.raises(ValueError, match="missing paths"):
    layout.from_flax({}, cfg)


# ------------------------------------------------------------------ timm FocalNet parity

def _timm_to_microsoft(sd_timm: dict) -> dict:
  """timm focalnet keys -> microsoft layout (reference §2.3, inverse of checkpoint_filter_fn)."""
  out = {}
  for k, v in sd_timm.items():
    k = re.sub(r"^stem\.", "patch_embed.", k)
    m = re.match(r"^layers\.(\d+)\.downsample\.(.*)$", k)
    if m:
      k = f"layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}"
    k = re.sub(r"^head\.fc\.", "head.", k)
    if re.search(r"(modulation\.(f|proj)|mlp\.fc[12])\.weight$", k):
      v = v[:, :, 0, 0]
    out[k] = v.detach().numpy().copy()
  return out


def _timm_reference(seed=0):
  import torch  # dev extra (never imported by vidjax/convert tables); no skip
  from timm.models import focalnet as timm_focalnet
  torch.manual_seed(seed)
  net = timm_focalnet.FocalNet(embed_dim=TINY["embed_dim"], depths=TINY["depths"],
                               num_classes=TINY["num_classes"], drop_path_rate=0.0).eval()
  with torch.no_grad():  # O(1) random weights so every op matters numerically
    for name, p in net.named_parameters():
      if p.ndim == 1:
        p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
      else:
        p.copy_(torch.randn_like(p) / np.sqrt(p[0].numel()))
  return torch, timm_focalnet, net


def test_timm_focalnet_parity_through_the_official_layout():
  """timm FocalNet (random weights) -> microsoft keys -> to_flax: logits match per frame.

  Tolerance 1e-4 (fp32, highest matmul precision): only summation order differs.
  """
  torch, timm_focalnet, net = _timm_reference()
  ms = _timm_to_microsoft(net.state_dict())
  cfg_img = vf.Config(**TINY, design="spatial_only")
  assert {k: v.shape for k, v in ms.items()} == layout.image_focalnet_shapes(cfg_img, 7)
  # Our inverse map agrees with timm's own microsoft->timm filter (strict load, same logits).
  net2 = timm_focalnet.FocalNet(embed_dim=16, depths=TINY["depths"], num_classes=7).eval()
  net2.load_state_dict(timm_focalnet.checkpoint_filter_fn(
      {k: torch.from_numpy(v) for k, v in ms.items()}, net2), strict=True)

  b, t, s = 2, 3, TINY["image_size"]
  clip = np.random.default_rng(0).standard_normal((b, t, s, s, 3)).astype(np.float32)
  frames = torch.from_numpy(clip.reshape(b * t, s, s, 3).transpose(0, 3, 1, 2).copy())
  with torch.no_grad():
    ref = net(frames).numpy().reshape(b, t, -1).mean(1)  # per-frame logits, averaged
    assert np.abs(net2(frames).numpy().reshape(b, t, -1).mean(1) - ref).max() < 1e-5

  image = _load(_abstract(cfg_img), layout.to_flax(ms, cfg_img))
  image.eval()
  # Video model, temporal branch neutral (h_temporal = 0 / 1), other temporal weights random.
  cfg = vf.Config(**TINY)
  rng = np.random.default_rng(1)
  sd = dict(ms)
  for k, shape in layout.official_shapes(cfg).items():
    if "_temporal" in k:
      sd[k] = (rng.standard_normal(shape).astype(np.float32) / np.sqrt(np.prod(shape[1:])))
      if "h_temporal" in k:
        sd[k] = np.zeros(shape, np.float32) if k.endswith("weight") else np.ones(shape,
                                                                              np.float32)
  video = _load(_abstract(cfg), layout.to_flax(sd, cfg))
  video.eval()
  with jax.default_matmul_precision("highest"):
    y_img = np.asarray(nnx.jit(lambda m, x: m(x))(image, jnp.asarray(clip)))
    y_vid = np.asarray(nnx.jit(lambda m, x: m(x))(video, jnp.asarray(clip)))
  e_img, e_vid = np.abs(y_img - ref).max(), np.abs(y_vid - ref).max()
  print(f"timm parity: spatial_only max|d| {e_img:.2e}, video (neutral temporal) {e_vid:.2e}, "
        f"logit scale {np.abs(ref).max():.2f}")
  assert e_img <= 1e-4 and e_vid <= 1e-4
  assert np.abs(ref).max() > 0.1
