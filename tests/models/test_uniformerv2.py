"""UniFormerV2 (vidjax.models.uniformerv2): released sizes, exact official computation, switches."""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from convert import uniformerv2_layout as layout
from vidjax import models
from vidjax.models import layers
from vidjax.models import uniformerv2 as u2

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG_FILES = sorted(p for p in (REPO / "configs" / "uniformerv2").glob("*.py")
                      if p.name not in ("__init__.py", "common.py"))

# Full released Sth-Sth design (local + global UniBlocks, T-down) at toy size.
TINY = dict(name="uniformerv2", width=64, layers=4, heads=4, n_head=4, patch_size=8, image_size=32,
            num_frames=4, num_classes=10, temporal_downsample=True, no_lmhra=False,
            return_list=(1, 2, 3))
# Two blocks, both read by global blocks: for the gradient tests (compile time dominates).
SMALL = dict(TINY, layers=2, return_list=(0, 1))


def load_config(path: pathlib.Path):
  spec = importlib.util.spec_from_file_location(f"cfg_{path.stem}", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config()


def n_params(model: nnx.Module) -> int:
  return sum(int(np.prod(v.get_value().shape))
             for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param)))


def clip(cfg: dict, batch: int = 2, seed: int = 1) -> jax.Array:
  s = cfg["image_size"]
  return jax.random.normal(jax.random.key(seed), (batch, cfg["num_frames"], s, s, 3))


def perturb(model: nnx.Module, seed: int = 0, scale: float = 0.3) -> None:
  """Replaces every Param (zero inits included) and BatchNorm statistic by random values."""
  rng = np.random.default_rng(seed)  # numpy: no per-shape XLA compilation
  for path, var in nnx.to_flat_state(nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))):
    v = var.get_value()
    r = scale * rng.standard_normal(v.shape)
    if path[-1] == "var":
      r = 0.5 + np.abs(r)
    elif path[-1] == "scale":
      r = 1.0 + r
    var.set_value(jnp.asarray(r, v.dtype))


@nnx.jit
def forward(model: nnx.Module, x: jax.Array) -> jax.Array:
  return model(x)


@nnx.jit
def grad_of_sum_sq(model: nnx.Module, x: jax.Array):
  """(loss, grads) of sum(logits²) w.r.t. every nnx.Param."""
  return nnx.value_and_grad(lambda m: jnp.sum(m(x) ** 2))(model)


# ------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("overrides,expected", [
    (dict(), 114_552_208),  # B/16 K400 8x224
    (dict(num_classes=710), 114_790_598),  # B/16 K710
    (dict(num_frames=16, temporal_downsample=True, no_lmhra=False, n_layers=8,
          num_classes=174), 162_992_814),  # B/16 SSv2 16x224
    (dict(variant="l14"), 354_099_600),  # L/14 K400 8x224
    (dict(variant="l14_336"), 354_427_280),  # L/14@336 K400
    (dict(variant="l14", num_frames=16, temporal_downsample=True, no_lmhra=False, n_layers=16,
          num_classes=174), 573_949_966),  # L/14 SSv2 16x224
    (dict(variant="l14_336", frozen=True), 354_426_256),  # frozen L/14@336 K400 (no balance)
])
def test_param_counts_equal_official_models(overrides, expected):
  # scan_layers only stacks the blocks (same count) and builds the abstract model ~10x faster.
  model = models.abstract(dict(name="uniformerv2", scan_layers=True, **overrides))
  print(overrides, f"{n_params(model):,}")
  assert n_params(model) == expected


def test_param_count_loop_equals_scan_b16():
  loop = models.abstract(dict(name="uniformerv2"))
  scan = models.abstract(dict(name="uniformerv2", scan_layers=True))
  assert scan.transformer.resblocks.attn.q_proj.kernel.shape == (12, 768, 768)  # stacked: scan
  assert n_params(loop) == n_params(scan) == 114_552_208


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_every_config_builds_with_every_field_and_gives_logits(path):
  config = load_config(path)
  fields = {f.name for f in dataclasses.fields(u2.Config)}
  assert set(config.model.keys()) == fields | {"name"}, path.name
  cfg = models.model_config(config.model)
  assert cfg.n_layers == len(cfg.return_list) and cfg.return_list[-1] == cfg.layers - 1
  model = models.abstract(dict(config.model.to_dict(), scan_layers=True))
  model.eval()
  graphdef, state = nnx.split(model)
  x = jax.ShapeDtypeStruct((2, cfg.num_frames, cfg.image_size, cfg.image_size, 3), jnp.float32)
  out = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state, x)
  assert out.shape == (2, cfg.num_classes) and out.dtype == jnp.float32


# --------------------------------------------------- the official computation, independently


def _ln(x, p):
  m = x.mean(-1, keepdims=True)
  v = ((x - m) ** 2).mean(-1, keepdims=True)
  return (x - m) / np.sqrt(v + 1e-5) * p[".weight"] + p[".bias"]


def _qgelu(x):
  return x / (1.0 + np.exp(-1.702 * x))


def _mlp(x, p):
  return _qgelu(x @ p(".c_fc.weight").T + p(".c_fc.bias")) @ p(".c_proj.weight").T + p(
      ".c_proj.bias")


def _mha(xq, xkv, p, heads):
  """Sequence-first torch MultiheadAttention: xq (Lq, N, C), xkv (Lk, N, C)."""
  w, b = p(".in_proj_weight"), p(".in_proj_bias")
  c = xq.shape[-1]
  q, k, v = (xq @ w[:c].T + b[:c], xkv @ w[c:2 * c].T + b[c:2 * c], xkv @ w[2 * c:].T + b[2 * c:])
  split = lambda t: t.reshape(t.shape[0], t.shape[1], heads, c // heads).transpose(1, 2, 0, 3)
  q, k, v = split(q), split(k), split(v)
  a = q @ k.transpose(0, 1, 3, 2) / np.sqrt(c // heads)
  a = np.exp(a - a.max(-1, keepdims=True))
  a = a / a.sum(-1, keepdims=True)
  o = (a @ v).transpose(2, 0, 1, 3).reshape(xq.shape[0], xq.shape[1], c)
  return o @ p(".out_proj.weight").T + p(".out_proj.bias")


def _depthwise(x, w, b, pad):
  """Depthwise Conv3d on (N, C, T, H, W); w (C, 1, kt, kh, kw)."""
  _, _, kt, kh, kw = w.shape
  xp = np.pad(x, ((0, 0), (0, 0)) + tuple((q, q) for q in pad))
  out = np.zeros_like(x)
  t, h, ww = x.shape[2:]
  for a in range(kt):
    for bb in range(kh):
      for cc in range(kw):
        out += w[None, :, 0, a, bb, cc, None, None, None] * xp[:, :, a:a + t, bb:bb + h, cc:cc + ww]
  return out + b[None, :, None, None, None]


def _pointwise(x, w, b):
  return np.einsum("oc,nc...->no...", w[:, :, 0, 0, 0], x) + b[None, :, None, None, None]


def _lmhra(x, p):
  """Local_MHRA.pos_embed on (N, C, T, H, W), BatchNorm with running statistics."""
  e = lambda q: p(q)[None, :, None, None, None]
  x = (x - e(".0.running_mean")) / np.sqrt(e(".0.running_var") + 1e-5) * e(".0.weight") + e(
      ".0.bias")
  x = _pointwise(x, p(".1.weight"), p(".1.bias"))
  x = _depthwise(x, p(".2.weight"), p(".2.bias"), (1, 0, 0))
  return _pointwise(x, p(".3.weight"), p(".3.bias"))


def official_forward(sd, cfg: u2.Config, clip_nthwc: np.ndarray) -> np.ndarray:
  """The official UniFormerV2 forward in float64 numpy, from the official-layout state dict."""
  get = lambda k: np.asarray(sd["backbone." + k], np.float64)
  sub = lambda prefix: (lambda k: get(prefix + k))
  x = np.asarray(clip_nthwc, np.float64).transpose(0, 4, 1, 2, 3)  # N, 3, T, H, W
  w = get("conv1.weight")
  c, _, kt, p, _ = w.shape
  n, _, t, hh, ww = x.shape
  stride = 2 if kt == 3 else 1
  xp = np.pad(x, ((0, 0), (0, 0), (kt // 2, kt // 2), (0, 0), (0, 0)))
  t2, g = (t + 2 * (kt // 2) - kt) // stride + 1, hh // p
  frames = []
  for i in range(t2):
    blk = xp[:, :, i * stride:i * stride + kt].reshape(n, 3, kt, g, p, g, p)
    frames.append(np.einsum("nctapbq,octpq->noab", blk, w))
  x = np.stack(frames, 2)  # N, C, T', h, w
  x = x.transpose(0, 2, 3, 4, 1).reshape(n * t2, g * g, c)
  x = np.concatenate([np.broadcast_to(get("class_embedding"), (n * t2, 1, c)), x], 1)
  x = x + get("positional_embedding")
  x = _ln(x, {".weight": get("ln_pre.weight"), ".bias": get("ln_pre.bias")})
  x = x.transpose(1, 0, 2)  # L, NT, C
  length = x.shape[0]
  ln = lambda prefix: {".weight": get(prefix + ".weight"), ".bias": get(prefix + ".bias")}

  def local(x, prefix):
    tmp = x[1:].reshape(g, g, n, t2, c).transpose(2, 4, 3, 0, 1)
    tmp = tmp + _lmhra(tmp, sub(prefix + ".pos_embed"))
    tmp = tmp.reshape(n, c, t2, g * g).transpose(3, 0, 2, 1).reshape(g * g, n * t2, c)
    return np.concatenate([x[:1], tmp], 0)

  q = np.broadcast_to(get("transformer.temporal_cls_token"), (1, n, c))
  j = 0
  for i in range(cfg.layers):
    r = f"transformer.resblocks.{i}"
    if not cfg.no_lmhra:
      x = local(x, r + ".lmhra1")
    x = x + _mha(_ln(x, ln(r + ".ln_1")), _ln(x, ln(r + ".ln_1")), sub(r + ".attn"), cfg.heads)
    if not cfg.no_lmhra and cfg.double_lmhra:
      x = local(x, r + ".lmhra2")
    x = x + _mlp(_ln(x, ln(r + ".ln_2")), sub(r + ".mlp"))
    if i in cfg.return_list:
      d = f"transformer.dec.{j}"
      f = x.reshape(length, n, t2, c).copy()
      feats = f[1:].transpose(1, 3, 2, 0).reshape(n, c, t2, g, g)
      feats = _depthwise(feats, get(f"transformer.dpe.{j}.weight"),
                         get(f"transformer.dpe.{j}.bias"), (1, 1, 1))
      f[1:] = f[1:] + feats.reshape(n, c, t2, g * g).transpose(3, 0, 2, 1)
      kv = f.transpose(2, 0, 1, 3).reshape(t2 * length, n, c)
      q = q + _mha(_ln(q, ln(d + ".ln_1")), _ln(kv, ln(d + ".ln_3")), sub(d + ".attn"), cfg.n_head)
      q = q + _mlp(_ln(q, ln(d + ".ln_2")), sub(d + ".mlp"))
      j += 1
  if cfg.frozen:
    z = q[0]
  else:
    wb = 1.0 / (1.0 + np.exp(-get("transformer.balance")))
    z = (1 - wb) * q[0] + wb * x.reshape(length, n, t2, c)[0].mean(1)
  z = _ln(z, ln("transformer.proj.0"))
  return z @ get("transformer.proj.2.weight").T + get("transformer.proj.2.bias")


@pytest.mark.parametrize("overrides", [
    dict(),  # local + global UniBlocks, T-down (Sth-Sth design)
    dict(temporal_downsample=False, no_lmhra=True, return_list=(2, 3)),  # Kinetics design
    dict(temporal_downsample=False, double_lmhra=False, frozen=True, return_list=(0, 3)),
], ids=["sth", "kinetics", "single_lmhra_frozen"])
def test_logits_equal_independent_official_forward(overrides):
  cfg_d = dict(TINY, **overrides)
  model = models.create(cfg_d, rngs=nnx.Rngs(0))
  perturb(model)
  model.eval()
  cfg = models.model_config(cfg_d)
  flat = {p: np.asarray(v.get_value()) for p, v in
          nnx.to_flat_state(nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat)))}
  sd = layout.from_flax(flat, cfg)
  x = clip(cfg_d)
  want = official_forward(sd, cfg, np.asarray(x))
  with jax.default_matmul_precision("highest"):
    got = np.asarray(forward(model, x))
  err = np.abs(got - want).max()
  print(f"{overrides}: max |logits - official| = {err:.2e} (|logits| ~ {np.abs(want).mean():.2f})")
  # fp32 vs float64 reference with every weight random (no identity shortcuts): 1e-4 (CONVENTIONS).
  assert err <= 1e-4


def test_zero_init_equals_plain_clip_path():
  """At init LT_MHRA, DPE's effect through the global blocks and the global blocks are identities,
  the query stays 0, so logits = proj(½·0 + ½·mean_t CLS_t) of a plain per-frame CLIP."""
  model = models.create(TINY, rngs=nnx.Rngs(3))
  model.eval()
  cfg = model.cfg
  x = clip(TINY)
  m = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  with jax.default_matmul_precision("highest"):
    got = forward(model, x)
    k = m["conv1"]["kernel"]
    h = jax.lax.conv_general_dilated(x, k, (2, 8, 8), ((1, 1), (0, 0), (0, 0)),
                                     dimension_numbers=("NTHWC", "THWIO", "NTHWC"))
    b, t = h.shape[:2]
    h = h.reshape(b * t, -1, cfg.width)
    h = jnp.concatenate([jnp.broadcast_to(m["class_embedding"], (b * t, 1, cfg.width)), h], 1)
    h = h + m["positional_embedding"]
    ln = lambda h, p: (h - h.mean(-1, keepdims=True)) / jnp.sqrt(
        h.var(-1, keepdims=True) + 1e-5) * p["scale"] + p["bias"]
    h = ln(h, m["ln_pre"])
    for blk in m["transformer"]["resblocks"].values():
      a = ln(h, blk["ln_1"])
      proj = lambda name: (a @ blk["attn"][name]["kernel"] + blk["attn"][name]["bias"]).reshape(
          b * t, -1, cfg.heads, cfg.width // cfg.heads)
      att = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", proj("q_proj"), proj("k_proj"))
                           / np.sqrt(cfg.width // cfg.heads), -1)
      o = jnp.einsum("bhqk,bkhd->bqhd", att, proj("v_proj")).reshape(b * t, -1, cfg.width)
      h = h + o @ blk["attn"]["out_proj"]["kernel"] + blk["attn"]["out_proj"]["bias"]
      f = ln(h, blk["ln_2"]) @ blk["mlp"]["c_fc"]["kernel"] + blk["mlp"]["c_fc"]["bias"]
      f = f * jax.nn.sigmoid(1.702 * f)
      h = h + f @ blk["mlp"]["c_proj"]["kernel"] + blk["mlp"]["c_proj"]["bias"]
    z = 0.5 * h[:, 0].reshape(b, t, cfg.width).mean(1)
    head = m["transformer"]["proj"]
    want = ln(z, head["norm"]) @ head["fc"]["kernel"] + head["fc"]["bias"]
  err = float(jnp.abs(got - want).max())
  print(f"zero-init model vs plain CLIP path: max |Δ| = {err:.2e}")
  assert err <= 1e-5  # same fp32 ops up to summation order


# ------------------------------------------------------------- training-time behaviour


def test_gradients_reach_every_parameter():
  model = models.create(SMALL, rngs=nnx.Rngs(0))
  perturb(model, scale=0.2)
  model.eval()
  x = clip(TINY)
  _, grads = grad_of_sum_sq(model, x)
  flat = nnx.to_flat_state(grads)
  assert len(flat) == len(nnx.to_flat_state(nnx.state(model, nnx.Param)))
  dead = [p for p, g in flat if not np.any(np.asarray(g.get_value()))]
  assert not dead, dead


def test_trainable_filter_freezes_backbone_only_when_frozen():
  cfg = dict(TINY, frozen=True)
  model = models.abstract(cfg)
  trainable = {p for p, _ in nnx.to_flat_state(nnx.state(model, u2.trainable_filter(
      models.model_config(cfg))))}
  all_params = {p for p, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))}
  frozen = all_params - trainable
  assert {p[0] for p in trainable} == {"transformer"}
  assert {p[1] for p in trainable} == {"temporal_cls_token", "dpe", "dec", "proj"}
  assert {p[0] for p in frozen} == {"conv1", "class_embedding", "positional_embedding", "ln_pre",
                                     "transformer"}
  assert all(p[1] == "resblocks" for p in frozen if p[0] == "transformer")
  assert not any(p[:2] == ("transformer", "balance") for p in all_params)
  full = models.abstract(TINY)
  assert len(nnx.to_flat_state(nnx.state(full, u2.trainable_filter(models.model_config(TINY))))) \
      == len(nnx.to_flat_state(nnx.state(full, nnx.Param)))


def test_bf16_forward_is_finite_and_close_to_fp32():
  m32 = models.create(TINY, rngs=nnx.Rngs(0))
  m16 = models.create(dict(TINY, dtype="bfloat16"), rngs=nnx.Rngs(0))
  for m in (m32, m16):
    perturb(m, scale=0.1)
    m.eval()
  x = clip(TINY)
  y32, y16 = forward(m32, x), forward(m16, x)
  assert y16.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(y16)))
  assert m16.transformer.dec[0].attn.q_proj.kernel.get_value().dtype == jnp.float32
  rel = float(jnp.linalg.norm(y16 - y32) / jnp.linalg.norm(y32))
  print(f"bf16 vs fp32 logits: relative L2 error {rel:.2e}")
  assert rel <= 2e-2  # CONVENTIONS bf16 tolerance


def test_jit_is_deterministic_and_train_differs_from_eval():
  cfg = dict(TINY, backbone_drop_path_rate=0.3, drop_path_rate=0.3)
  model = models.create(cfg, rngs=nnx.Rngs(0))
  perturb(model, scale=0.2)
  x = clip(cfg)
  model.eval()
  e1, e2 = forward(model, x), forward(model, x)
  np.testing.assert_array_equal(np.asarray(e1), np.asarray(e2))
  model.train()
  t1, t2 = forward(model, x), forward(model, x)
  assert float(jnp.abs(t1 - e1).max()) > 1e-3  # dropout, drop-path and BN batch statistics
  assert float(jnp.abs(t1 - t2).max()) > 1e-3  # fresh masks each call


def test_train_equals_eval_without_stochastic_layers_except_batchnorm():
  quiet = dict(TINY, mlp_dropout=(0.0,) * 3, cls_dropout=0.0)
  for no_lmhra in (True, False):
    cfg = dict(quiet, no_lmhra=no_lmhra)
    model = models.create(cfg, rngs=nnx.Rngs(0))
    perturb(model, scale=0.2)
    x = clip(cfg)
    model.eval()
    e = forward(model, x)
    model.train()
    before = np.asarray(model.transformer.resblocks[0].lmhra1.pos_embed.layers[0].mean.get_value()) \
        if not no_lmhra else None
    t = forward(model, x)
    diff = float(jnp.abs(t - e).max())
    if no_lmhra:
      assert diff == 0.0
    else:  # BatchNorm normalises with batch statistics and updates its running mean (momentum 0.9)
      assert diff > 1e-3
      after = np.asarray(model.transformer.resblocks[0].lmhra1.pos_embed.layers[0].mean.get_value())
      assert np.abs(after - before).max() > 1e-4


def test_drop_path_masks_follow_the_released_semantics():
  rngs = nnx.Rngs(0)
  dp = layers.LayerDropPath(0.5, 0.5, rngs=rngs)
  x = jnp.ones((4, 64, 8))
  y = np.asarray(dp(x, mask_axes=(1,)))  # resblock attn/FFN: token positions, shared by the batch
  assert set(np.unique(y)) == {0.0, 2.0}
  assert (y == y[:1, :, :1]).all()
  y = np.asarray(dp(jnp.ones((64, 2, 3, 3, 8)), mask_axes=(0,)))  # LT_MHRA: whole clips
  assert (y == y[:, :1, :1, :1, :1]).all() and set(np.unique(y[:, 0, 0, 0, 0])) == {0.0, 2.0}
  with nnx.use_eager_sharding(False):
    g = u2.GlobalUniBlock(models.model_config(TINY), 0.0, 0.5, rngs=rngs)
  coins = {float(np.asarray(g.drop_path(jnp.ones((16, 1, 8)), mask_axes=(1,)))[:, 0, 0].std())
           for _ in range(8)}
  assert coins == {0.0}  # one coin for the whole batch per call
  # Per-layer rates are data: layer i of a scanned stack keeps linspace(0, rate, layers)[i].
  scanned = models.abstract(dict(TINY, scan_layers=True, backbone_drop_path_rate=0.3))
  assert scanned.transformer.resblocks.drop_path.layer_rate.get_value().shape == (4,)
  model = models.create(dict(TINY, backbone_drop_path_rate=0.3), rngs=nnx.Rngs(0))
  np.testing.assert_allclose([float(b.drop_path.layer_rate.get_value())
                              for b in model.transformer.resblocks], np.linspace(0, 0.3, 4))


def _copy_into_scan(loop_model, cfg_d):
  scan_d = dict(cfg_d, scan_layers=True)
  scan = models.create(scan_d, rngs=nnx.Rngs(1))
  flat = {p: np.asarray(v.get_value()) for p, v in
          nnx.to_flat_state(nnx.state(loop_model, nnx.Any(nnx.Param, nnx.BatchStat)))}
  stacked = layout.to_flax(layout.from_flax(flat, models.model_config(cfg_d)),
                           models.model_config(scan_d))
  state = nnx.state(scan, nnx.Any(nnx.Param, nnx.BatchStat))
  for p, v in nnx.to_flat_state(state):
    v.set_value(jnp.asarray(stacked[p]))
  return scan


def test_scan_layers_equals_python_loop():
  model = models.create(TINY, rngs=nnx.Rngs(0))
  perturb(model)
  scan = _copy_into_scan(model, TINY)
  model.eval()
  scan.eval()
  x = clip(TINY)
  with jax.default_matmul_precision("highest"):
    a, b = forward(model, x), forward(scan, x)
  err = float(jnp.abs(a - b).max())
  print(f"scan vs loop: max |Δ| = {err:.2e}")
  assert err <= 1e-5
  # Training mode runs under scan too: BN statistics of every stacked layer update.
  scan.train()
  before = np.asarray(scan.transformer.resblocks.lmhra1.pos_embed.layers[0].mean.get_value())
  forward(scan, x)
  after = np.asarray(scan.transformer.resblocks.lmhra1.pos_embed.layers[0].mean.get_value())
  assert after.shape == (4, 64) and (np.abs(after - before).max(axis=1) > 1e-4).all()


@pytest.mark.parametrize("scan", [False, True])
def test_remat_gives_equal_logits_and_grads(scan):
  base = dict(SMALL, scan_layers=scan)
  ref = models.create(base, rngs=nnx.Rngs(0))
  rem = models.create(dict(base, remat_policy="full"), rngs=nnx.Rngs(0))
  x = clip(TINY)
  outs = []
  for m in (ref, rem):
    perturb(m, scale=0.2)
    m.eval()
    with jax.default_matmul_precision("highest"):
      loss, grads = grad_of_sum_sq(m, x)
    outs.append((loss, grads))
  (l1, g1), (l2, g2) = outs
  assert abs(float(l1) - float(l2)) <= 1e-5 * abs(float(l1))
  errs = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), nnx.to_pure_dict(g1),
                      nnx.to_pure_dict(g2))
  worst = max(jax.tree.leaves(errs))
  size = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(nnx.to_pure_dict(g1)))
  print(f"remat vs none (scan={scan}): max |Δgrad| = {worst:.2e} (max |grad| {size:.2e})")
  assert worst <= 1e-5 * size  # recomputation reorders fp32 sums only


@pytest.mark.parametrize("overrides", [
    dict(fusion="parallel"), dict(fusion="hierarchical_kv"),
    dict(fusion="hierarchical_q", num_queries=2), dict(num_queries=3, use_dpe=False),
], ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()))
def test_ablation_switches_build_run_and_train(overrides):
  cfg = dict(SMALL, **overrides)
  model = models.create(cfg, rngs=nnx.Rngs(0))
  base = models.create(SMALL, rngs=nnx.Rngs(0))
  for m in (model, base):
    perturb(m, scale=0.2)
    m.eval()
  x = clip(cfg)
  y = forward(model, x)
  assert y.shape == (2, 10) and bool(jnp.all(jnp.isfinite(y)))
  assert float(jnp.abs(y - forward(base, x)).max()) > 1e-3  # the switch changes the network
  _, grads = grad_of_sum_sq(model, x)
  dead = [p for p, g in nnx.to_flat_state(grads) if not np.any(np.asarray(g.get_value()))]
  assert not dead, dead  # every global block (and U^F) reaches the logits
  if overrides.get("fusion") == "parallel":
    assert model.transformer.fusion_weight.get_value().shape == (2, 64)
  if "num_queries" in overrides:
    q = overrides["num_queries"]
    assert model.transformer.temporal_cls_token.get_value().shape == (1, q, 64)
  if overrides.get("use_dpe") is False:
    assert model.transformer.dpe is None
  with pytest.raises(ValueError, match="ablation"):
    layout.official_shapes(models.model_config(cfg))


@pytest.mark.parametrize("overrides,field", [
    (dict(num_frames=5), "model.num_frames=5"),
    (dict(image_size=36), "model.image_size=36"),
    (dict(return_list=(0, 1, 2, 3, 3)), "model.return_list"),
    (dict(return_list=(0, 1, 2, 3, 4)), "model.return_list"),
    (dict(return_list=(3, 1)), "model.return_list"),
    (dict(return_list=(1, 1)), "model.return_list"),
    (dict(return_list=(1, 2), n_layers=3), "model.n_layers=3"),
    (dict(mlp_dropout=(0.5,)), "model.mlp_dropout"),
    (dict(fusion="tree"), "model.fusion='tree'"),
    (dict(dtype="fp8"), "model.dtype='fp8'"),
    (dict(num_queries=0), "model.num_queries=0"),
    (dict(cls_dropout=1.0), "model.cls_dropout=1.0"),
    (dict(variant="h14"), "model.variant='h14'"),
    (dict(remat_policy="some"), "model.remat_policy='some'"),
    (dict(attention_impl="flash"), "model.attention_impl='flash'"),
])
def test_bad_configs_raise_naming_the_field(overrides, field):
  with pytest.raises(ValueError) as e:
    models.model_config(dict(TINY, **overrides))
  print(e.value)
  assert field in str(e.value)


def test_unknown_config_key_is_rejected_with_valid_keys():
  with pytest.raises(ValueError, match=r"model\.drop_rate.*valid keys.*backbone_drop_path_rate"):
    models.model_config(dict(TINY, drop_rate=0.1))


def test_wrong_clip_shape_names_the_expected_shape():
  model = models.abstract(TINY)
  with pytest.raises(ValueError, match=r"\[B, 4, 32, 32, 3\]"):
    jax.eval_shape(lambda x: model(x), jax.ShapeDtypeStruct((1, 8, 32, 32, 3), jnp.float32))
