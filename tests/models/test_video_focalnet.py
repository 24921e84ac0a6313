"""Video-FocalNet model tests: official param counts, neutral-temporal identity, switches."""

import dataclasses
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from convert import video_focalnet_layout as layout
from vidjax import models
from vidjax.models import layers
from vidjax.models import video_focalnet as vf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Two stages keep XLA compiles short (CPU CI); every stage-level code path is still exercised.
TINY = dict(depths=(1, 2), embed_dim=16, num_classes=7, num_frames=4, image_size=32,
            focal_levels=(2, 2), focal_windows=(3, 3))


def _load_config(name):
  spec = importlib.util.spec_from_file_location(f"vf_cfg_{name}",
                                                f"{ROOT}/configs/video_focalnet/{name}.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config()


def _random_params(model, seed: int) -> dict:
  """O(1)-activation random weights (numpy; no per-shape XLA init compiles, keeps tests fast)."""
  rng = np.random.default_rng(seed)
  out = {}
  for path, var in nnx.to_flat_state(nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))):
    shape, name = var.get_value().shape, path[-1]
    n = rng.standard_normal(shape).astype(np.float32)
    if name == "scale":
      out[path] = 1 + 0.1 * n
    elif name == "bias":
      out[path] = 0.1 * n
    elif name == "kernel":
      out[path] = n / np.sqrt(np.prod(shape[:-1]))
    else:  # layerscale gammas
      out[path] = 0.5 + 0.1 * n
  return out


def _build(cfg: vf.Config, seed: int = 0, flat: dict | None = None) -> vf.Model:
  """Abstract model filled with ``flat`` (or random weights); dropout stream seeded by ``seed``."""
  with nnx.use_eager_sharding(False):
    model = nnx.eval_shape(lambda: vf.Model(cfg, rngs=nnx.Rngs(0)))
  _load(model, _random_params(model, seed) if flat is None else flat)
  return models.fill_rest(model, seed)


_fwd = nnx.jit(lambda m, x: m(x))
_features = nnx.jit(lambda m, x: m.features(x))


def _flat(model) -> dict:
  state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
  return {p: np.asarray(v.get_value()) for p, v in nnx.to_flat_state(state)}


def _load(model, flat) -> None:
  state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
  items = list(nnx.to_flat_state(state))
  assert {p for p, _ in items} == set(flat)
  for path, var in items:
    var.set_value(jnp.asarray(flat[path]))
  nnx.update(model, state)


def _clip(b=2, t=4, s=32, seed=1):
  return jax.random.normal(jax.random.key(seed), (b, t, s, s, 3), jnp.float32)


# Measured with the official videofocalnet.py (reference §1.7).
OFFICIAL = {"k400_tiny": 49_553_272, "k400_small": 88_735_168, "k400_base": 157_389_216,
            "k600_base": 157_594_216, "ssv2_base": 157_157_566, "diving48_base": 157_028_416,
            "anet_base": 157_184_216}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_param_count_and_output_shape(name):
  config = _load_config(name)
  model = models.abstract(config.model)
  n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  print(f"{name}: {n:,} params")
  assert n == OFFICIAL[name]
  model.eval()
  clip = jax.ShapeDtypeStruct((1, 8, 224, 224, 3), jnp.float32)
  out = jax.eval_shape(lambda m, x: m(x), model, clip)
  assert out.shape == (1, config.model.num_classes) and out.dtype == jnp.float32


def test_tiny_test_config_output_shape():
  config = _load_config("tiny_test")
  model = models.abstract(config.model)
  model.eval()
  m = config.model
  clip = jax.ShapeDtypeStruct((2, m.num_frames, m.image_size, m.image_size, 3), jnp.float32)
  assert jax.eval_shape(lambda m, x: m(x), model, clip).shape == (2, m.num_classes)


def test_init_follows_official_init_weights():
  """Linear trunc_normal(.02)/bias 0, LN 1/0, convs PyTorch default U(+-1/sqrt(fan_in))."""
  cfg = vf.Config(depths=(2,), embed_dim=32, focal_levels=(2,), focal_windows=(3,),
                  image_size=32, num_classes=5)
  with nnx.use_eager_sharding(False):
    model = models.create(dict(name="video_focalnet", **dataclasses.asdict(cfg)),
                          rngs=nnx.Rngs(0))
  mod = model.layers[0].blocks[0].modulation
  fc1 = np.asarray(model.layers[0].blocks[1].mlp.fc1.kernel.get_value())
  assert abs(fc1.std() - 0.02) < 0.001  # timm trunc_normal_ cuts at +-2 absolute: ~N(0, .02^2)
  assert not np.asarray(mod.f.bias.get_value()).any()
  assert np.array_equal(np.asarray(model.norm.scale.get_value()), np.ones(32, np.float32))
  dw = np.asarray(mod.focal_layers[1].kernel.get_value())  # [5,5,1,C]: fan_in 25
  assert np.abs(dw).max() <= 1 / 5 and np.abs(dw).max() > 0.19
  tc = np.asarray(mod.focal_layers_temporal[0].kernel.get_value())  # [3,C,C]: fan_in 96
  assert np.abs(tc).max() <= 1 / np.sqrt(96) and np.abs(tc).max() > 0.9 / np.sqrt(96)
  # h (Conv2d 1x1) and h_temporal (Conv1d k=1) are convs, untouched by _init_weights: PyTorch's
  # default U(+-1/sqrt(C)) for the weight *and* the bias (not trunc_normal / zeros).
  for h in (mod.h, mod.h_temporal):
    for p in (h.kernel, h.bias):
      v = np.asarray(p.get_value())
      assert np.abs(v).max() <= 1 / np.sqrt(32) and np.abs(v).max() > 0.8 / np.sqrt(32)
      assert abs(v.std() - 1 / np.sqrt(3 * 32)) < 0.1 / np.sqrt(32)  # uniform: bound / sqrt 3


def test_image_focalnet_tiny_param_count():
  # microsoft focalnet_tiny_srf: 28,427,116 params (reference §2.2) == spatial_only design.
  cfg = vf.Config(variant="tiny", design="spatial_only", num_classes=1000)
  with nnx.use_eager_sharding(False):
    model = nnx.eval_shape(lambda: vf.Model(cfg, rngs=nnx.Rngs(0)))
  n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  assert n == 28_427_116


def test_neutral_temporal_branch_is_per_frame_image_focalnet():
  """h_temporal kernel 0 / bias 1 makes m_t == 1: logits == image FocalNet per frame + mean."""
  cfg = vf.Config(**TINY)
  video = _build(cfg)
  flat = _flat(video)
  for p in flat:
    if "h_temporal" in p:
      flat[p] = np.zeros_like(flat[p]) if p[-1] == "kernel" else np.ones_like(flat[p])
  video = _build(cfg, flat=flat)
  img_cfg = dataclasses.replace(cfg, design="spatial_only")
  sd = {k: v for k, v in layout.from_flax(flat, cfg).items() if "_temporal" not in k}
  image = _build(img_cfg, flat=layout.to_flax(sd, img_cfg))
  video.eval()
  image.eval()
  x = _clip()
  with jax.default_matmul_precision("highest"):
    y_video = _fwd(video, x)
    y_clip = _fwd(image, x)  # per-frame image network, features averaged over T, then head
    y_frames = jnp.stack([_fwd(image, x[:, t:t + 1]) for t in range(x.shape[1])], 1).mean(1)
  e1 = float(jnp.abs(y_video - y_clip).max())
  e2 = float(jnp.abs(y_video - y_frames).max())
  print(f"neutral temporal: max|video - spatial_only| = {e1:.2e}, vs mean of per-frame logits "
        f"{e2:.2e} (logit scale {float(jnp.abs(y_video).max()):.2f})")
  assert e1 <= 1e-5 and e2 <= 1e-5  # fp32 round-off only; the head is linear
  assert float(jnp.abs(y_video).max()) > 1e-2  # not trivially zero


def test_gradients_reach_every_parameter():
  model = _build(vf.Config(**{**TINY, "embed_dim": 8}, use_layerscale=True))
  model.eval()
  x = _clip()
  w = jax.random.normal(jax.random.key(3), (2, 7))
  grads = nnx.jit(nnx.grad(lambda m: (m(x) * w).sum()))(model)
  norms = {p: float(jnp.linalg.norm(v.get_value())) for p, v in nnx.to_flat_state(grads)}
  assert len(norms) == len(_flat(model))
  dead = [p for p, n in norms.items() if not n > 0 or not np.isfinite(n)]
  assert not dead, dead


def test_bfloat16_forward_is_finite_and_close():
  cfg = vf.Config(**TINY)
  f32 = _build(cfg)
  b16 = _build(dataclasses.replace(cfg, dtype="bfloat16"), flat=_flat(f32))
  f32.eval()
  b16.eval()
  x = _clip()
  with jax.default_matmul_precision("highest"):
    ref = _fwd(f32, x)
  out = _fwd(b16, x)
  assert out.dtype == jnp.float32 and bool(jnp.isfinite(out).all())
  rel = float(jnp.linalg.norm(out - ref) / jnp.linalg.norm(ref))
  print(f"bf16 vs fp32 relative error {rel:.3e}")
  assert rel < 5e-2  # bf16 keeps 8 mantissa bits through 5 blocks + stem/downsamples


def test_jit_is_deterministic():
  model = _build(vf.Config(**{**TINY, "embed_dim": 8}))
  model.eval()
  x = _clip()
  a, b = _fwd(model, x), _fwd(model, x)
  assert bool(jnp.array_equal(a, b))
  model2 = _build(vf.Config(**{**TINY, "embed_dim": 8}), flat=_flat(model))
  model2.eval()
  assert bool(jnp.array_equal(_fwd(model2, x), a))  # fresh module, same weights, same bits


def test_train_differs_from_eval_only_with_drop_path():
  x = _clip()
  for rate, differs in [(0.0, False), (0.5, True)]:
    model = _build(vf.Config(**{**TINY, "embed_dim": 8}, drop_path_rate=rate))
    model.eval()
    y_eval = _fwd(model, x)
    model.train()
    y_train = _fwd(model, x)
    assert bool(jnp.any(y_train != y_eval)) == differs, rate


def test_drop_path_drops_whole_frames():
  x = jnp.ones((64, 3, 3, 4))
  y = layers.drop_path(x, 0.5, jax.random.key(0))
  per_frame = np.asarray(y).reshape(64, -1)
  assert set(np.unique(per_frame)) <= {0.0, 2.0}
  assert (per_frame.min(1) == per_frame.max(1)).all()  # one coin per (b, t) row
  assert 10 < (per_frame[:, 0] == 0).sum() < 54
  assert bool(jnp.array_equal(layers.drop_path(x, jnp.float32(0.0), jax.random.key(0)), x))


def test_scan_equals_loop():
  """Same weights -> same logits in eval mode; in train mode the scanned stack drops paths too.

  Each layer holds its own ``dropout`` stream, and a scanned stack's streams are split from one
  key while a loop's are forked one by one, so train-mode masks are equally distributed but not
  identical between the two layouts.
  """
  cfg = vf.Config(**TINY, drop_path_rate=0.3)
  scan_cfg = dataclasses.replace(cfg, scan_layers=True)
  loop = _build(cfg, seed=7)
  scan = _build(scan_cfg, seed=7, flat=layout.to_flax(layout.from_flax(_flat(loop), cfg),
                                                      scan_cfg))
  x = _clip()
  loop.eval()
  scan.eval()
  with jax.default_matmul_precision("highest"):
    y_loop, y_scan = _fwd(loop, x), _fwd(scan, x)
    scan.train()
    y_train = _fwd(scan, x)
    nnx.reseed(scan, dropout=8, policy="match_shape")
    y_other = _fwd(scan, x)
  err = float(jnp.abs(y_loop - y_scan).max())
  print(f"scan vs loop (eval): max|d| {err:.2e}")
  assert err <= 1e-5
  assert float(jnp.abs(y_train - y_scan).max()) > 1e-3  # drop-path active under scan
  assert float(jnp.abs(y_train - y_other).max()) > 1e-3  # and re-keyed by nnx.reseed


def test_remat_equals_no_remat():
  cfg = vf.Config(**{**TINY, "embed_dim": 8})
  rcfg = dataclasses.replace(cfg, remat_policy="full", scan_layers=True)
  plain = _build(cfg)
  remat = _build(rcfg, flat=layout.to_flax(layout.from_flax(_flat(plain), cfg), rcfg))
  plain.eval()
  remat.eval()
  x = _clip()
  grad = nnx.jit(nnx.value_and_grad(lambda m, x: jnp.sum(m(x) ** 2)))
  with jax.default_matmul_precision("highest"):
    l1, g1 = grad(plain, x)
    l2, g2 = grad(remat, x)
  g1 = layout.from_flax({p: v.get_value() for p, v in nnx.to_flat_state(g1)}, cfg)
  g2 = layout.from_flax({p: v.get_value() for p, v in nnx.to_flat_state(g2)}, rcfg)
  err = max(float(np.abs(g1[k] - g2[k]).max()) for k in g1)
  print(f"remat+scan vs plain: loss {float(l1):.6f} / {float(l2):.6f}, max|grad diff| {err:.2e}")
  assert abs(float(l1 - l2)) <= 1e-5 * abs(float(l1))
  assert err <= 1e-4 * max(float(np.abs(g).max()) for g in g1.values())


# Every design, fusion and switch, grouped to limit compiles; each group builds and runs.
SWITCHES = [
    dict(design="spatial_only"),
    dict(design="factorized_3d", normalize_modulator=True),
    dict(design="factorized_encoder", use_layerscale=True, drop_path_rate=0.5),
    dict(design="divided", use_layerscale=True, drop_path_rate=0.5, drop_rate=0.1),
    dict(modulator_fusion="average", use_postln=True),
    dict(modulator_fusion="projection", use_postln_in_modulation=True),
    dict(use_conv_embed=True, tubelet_size=2),
]
# Parameter names each switch must create.
EXPECT = {"factorized_3d": "focal_layers_temporal", "factorized_encoder": "temporal_encoder",
          "divided": "modulation_temporal", "projection": "fusion", "use_layerscale": "gamma_1",
          "use_postln_in_modulation": "ln"}


@pytest.mark.parametrize("overrides", SWITCHES, ids=lambda d: ",".join(f"{k}={v}" for k, v in
                                                                         d.items()))
def test_design_and_switch_builds_and_runs(overrides):
  model = _build(vf.Config(**{**TINY, "embed_dim": 8}, **overrides))
  x = _clip(1, 4)
  perm = jnp.array([2, 0, 3, 1])
  model.eval()
  with jax.default_matmul_precision("highest"):
    y, y_perm = _fwd(model, x), _fwd(model, x[:, perm])
  assert y.shape == (1, 7) and bool(jnp.isfinite(y).all())
  # Frame order matters iff the design models time (mean over T is order-free).
  err = float(jnp.abs(y - y_perm).max())
  assert (err > 1e-3) == (overrides.get("design") != "spatial_only"), err
  assert err > 1e-3 or err < 1e-5, err
  if overrides.get("drop_path_rate"):
    model.train()
    y_train = _fwd(model, x)
    assert bool(jnp.isfinite(y_train).all()) and float(jnp.abs(y_train - y).max()) > 1e-4
  flat = _flat(model)
  names = {str(k) for p in flat for k in p}
  for key, name in EXPECT.items():
    if key in overrides or key in overrides.values():
      assert name in names, (key, name)
  has_temporal = {n for n in names if "temporal" in n}
  if overrides.get("design") == "spatial_only":
    assert not has_temporal
  if overrides.get("tubelet_size") == 2:
    assert flat[("patch_embed", "proj", "kernel")].shape == (2, 7, 7, 3, 8)
    assert flat[("layers", 0, "downsample", "proj", "kernel")].shape == (3, 3, 8, 16)


@pytest.mark.parametrize("field,value,match", [
    ("colour", 1, "model.colour"),
    ("num_frames", 5, "model.num_frames"),  # with tubelet_size=2 below
    ("image_size", 100, "model.image_size"),
    ("design", "joint", "model.design"),
    ("modulator_fusion", "concat", "model.modulator_fusion"),
    ("dtype", "float8", "model.dtype"),
    ("focal_levels", (2, 2), "model.focal_levels"),
    ("variant", "huge", "model.variant"),
    ("depths", (2, 0, 2, 2), "model.depths"),
    ("remat_policy", "sometimes", "model.remat_policy"),
])
def test_bad_config_names_the_field(field, value, match):
  d = dict(name="video_focalnet", variant="tiny", tubelet_size=2, num_frames=8)
  d[field] = value
  with pytest.raises(ValueError, match=match):
    models.model_config(d)


def test_fusion_requires_two_modulators():
  with pytest.raises(ValueError, match="model.modulator_fusion"):
    vf.config_from_dict(dict(design="divided", modulator_fusion="average"))
