"""The jitted train/eval steps on device meshes (8 simulated CPU devices, in process).

Tolerances: fp32 runs of the same step on different meshes differ only in reduction order
(cross-device all-reduces), so losses agree to ~1e-7 relative (we allow 1e-5). Parameters are
compared after SGD steps (atol 1e-6): AdamW divides by sqrt(v), which turns the reduction-order
noise of gradient elements that are ~0 into a visible fraction of a learning-rate step.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from vidjax.data import mixing
from vidjax.train import loop, mesh as mesh_lib

DATA8 = (("data", 8), ("fsdp", 1), ("tensor", 1))
SGD = dict(name="sgd", momentum=0.9, nesterov=True, weight_decay=0.0, clip_grad_norm=5.0,
           grad_accum_steps=1)


def _setup(config, mesh_spec, devices=None):
  config = loop.resolve_config(config)
  config.mesh = mesh_spec
  mesh = mesh_lib.make_mesh(config.mesh, devices)
  setup, _ = loop.build(config, steps_per_epoch=10, mesh=mesh)
  state, _ = loop.init_state(setup, seed=0)
  return setup, state


def _batch(config, n, seed=0):
  rng = np.random.default_rng(seed)
  m = config.model
  return {"clip": rng.integers(0, 256, (n, m.num_frames, m.image_size, m.image_size, 3),
                               dtype=np.uint8),
          "label": rng.integers(0, m.num_classes, (n,)).astype(np.int32)}


def _steps(setup, state, batches):
  metrics = []
  with jax.set_mesh(setup.mesh), nnx.logical_axis_rules(setup.rules):
    for b in batches:
      state, m = setup.train_step(state, jax.device_put(b, setup.batch_sharding))
      metrics.append(m)
  return state, metrics


def _tiny_u(load_config, **optim):
  c = load_config("uniformerv2/tiny_test.py")  # BatchNorm, drop-path 0.2/0.4, dropout 0.5
  c.data.batch_size = 8
  if optim:
    c.optim = ml_collections.ConfigDict(optim)
  return c


@pytest.fixture(scope="module")
def u8(load_config):
  """(config, setup, state) of the tiny UniFormerV2 (SGD) on a data=8 mesh, compiled once."""
  c = _tiny_u(load_config, **SGD)
  setup, state = _setup(c, DATA8)
  return c, setup, state


def test_fsdp_really_shards_parameters_and_optimizer_state(load_config, u8):
  c = _tiny_u(load_config)  # AdamW: two moments per parameter
  dp = _setup(c, DATA8)[1]
  fsdp = _setup(c, (("data", 1), ("fsdp", 8), ("tensor", 1)))[1]
  per_dp = mesh_lib.bytes_per_device((dp.params, dp.opt_state))
  per_fsdp = mesh_lib.bytes_per_device((fsdp.params, fsdp.opt_state))
  total = sum(x.nbytes for x in jax.tree.leaves((dp.params, dp.opt_state)))
  print(f"params+AdamW: {total / 2**20:.2f} MiB; per device: data=8 "
        f"{max(per_dp.values()) / 2**20:.2f} MiB, fsdp=8 {max(per_fsdp.values()) / 2**20:.2f} MiB")
  assert max(per_dp.values()) == total  # pure data parallelism replicates
  assert max(per_fsdp.values()) < total / 5  # 8-way FSDP; small 1-D params stay replicated


def test_train_steps_on_2x2x2_and_8x1x1_meshes_equal_one_device(load_config, u8):
  c, setup8, state8 = u8
  batches = [_batch(c, 8, s) for s in range(2)]
  runs = {"data=8": _steps(setup8, jax.tree.map(jnp.copy, state8), batches)}
  runs["2x2x2"] = _steps(*_setup(c, (("data", 2), ("fsdp", 2), ("tensor", 2))), batches)
  one = _steps(*_setup(c, (("data", 1), ("fsdp", 1), ("tensor", 1)), jax.devices()[:1]),
               batches)
  l1 = [float(m["loss"]) for m in one[1]]
  for name, (state, metrics) in runs.items():
    losses = [float(m["loss"]) for m in metrics]
    print(f"{name}: losses {losses} vs one device {l1}")
    np.testing.assert_allclose(losses, l1, rtol=1e-5)
    for a, b in zip(jax.tree.leaves((state.params, state.batch_stats)),
                    jax.tree.leaves((one[0].params, one[0].batch_stats))):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_gradient_accumulation_equals_the_large_batch(load_config):
  # No BatchNorm (local MHRA off) and no dropout / drop-path: per-micro-batch statistics and
  # masks would legitimately differ.
  c = _tiny_u(load_config, **SGD)
  c.model.update(no_lmhra=True, mlp_dropout=(0.0, 0.0), cls_dropout=0.0,
                 backbone_drop_path_rate=0.0, drop_path_rate=0.0)
  c.schedule.update(base_lr=0.1, warmup_epochs=0.0)
  big = _batch(c, 8)
  spec, devices = (("data", 4), ("fsdp", 1), ("tensor", 1)), jax.devices()[:4]
  setup1, s1 = _setup(c, spec, devices)
  init = jax.tree.map(np.asarray, s1.params)
  s1, _ = _steps(setup1, s1, [big])
  c.optim.grad_accum_steps = 2
  setup2, s2 = _setup(c, spec, devices)
  s2, _ = _steps(setup2, s2, [{k: v[i * 4:(i + 1) * 4] for k, v in big.items()}
                              for i in range(2)])
  assert int(s2.step) == 2
  diff = lambda x, y: max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                          for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y)))
  err, moved = diff(s1.params, s2.params), diff(s1.params, init)
  print(f"accumulated vs large batch: max |dparam| {err:.2e} (the update moved them {moved:.2e})")
  assert moved > 1e-3 and err < 1e-6


def test_dropout_masks_are_a_function_of_seed_and_step(u8):
  c, setup, state = u8
  b = _batch(c, 8)
  (_, m0), (_, m1) = (_steps(setup, jax.tree.map(jnp.copy, state), [b]) for _ in range(2))
  later = jax.tree.map(jnp.copy, state).replace(step=state.step + 7)
  _, m2 = _steps(setup, later, [b])
  assert float(m0[0]["loss"]) == float(m1[0]["loss"])  # same (seed, step): identical masks
  assert float(m2[0]["loss"]) != float(m0[0]["loss"])  # another step: other masks


def test_nonfinite_loss_leaves_the_state_unchanged_and_names_the_groups(u8):
  c, setup, state = u8
  state = jax.tree.map(jnp.copy, state)
  params = state.params
  key = ("transformer", "proj", "fc", "bias")
  bias = params[key[0]][key[1]][key[2]][key[3]]
  bias.set_value(bias.get_value().at[0].set(jnp.nan))
  before = jax.tree.map(np.asarray, (state.params, state.batch_stats, state.opt_state))
  new, (m,) = _steps(setup, state, [_batch(c, 8)])
  assert not bool(m["finite"])
  after = jax.tree.map(np.asarray, (new.params, new.batch_stats, new.opt_state))
  for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(before)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(loop.NonFiniteError, match=r"step 1: loss=nan.*groups \[.*'transformer'"):
    loop._check_finite(1, m, setup.model.groups)


def test_eval_step_sums_per_view_softmax(u8):
  c, setup, state = u8
  rng = np.random.default_rng(0)
  m = c.model
  clip = rng.integers(0, 256, (8, 3, m.num_frames, m.image_size, m.image_size, 3), np.uint8)
  batch = {"clip": clip, "label": np.zeros(8, np.int32), "valid": np.ones(8, bool),
           "index": np.arange(8)}
  weights = (state.params, state.frozen, state.batch_stats)
  with jax.set_mesh(setup.mesh), nnx.logical_axis_rules(setup.rules):
    out = setup.eval_step(weights, jax.device_put(batch, setup.batch_sharding))
  model = setup.model.merge(False, *weights)
  logits = [np.asarray(model(mixing.normalize(jnp.asarray(clip[:, v]), c.data.mean,
                                              c.data.std))) for v in range(3)]
  softmax = lambda l: np.exp(l - l.max(-1, keepdims=True)) / np.exp(
      l - l.max(-1, keepdims=True)).sum(-1, keepdims=True)
  expect = sum(softmax(l) for l in logits)
  np.testing.assert_allclose(np.asarray(out["scores"]), expect, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(out["top5"])[:, 0], expect.argmax(-1))
  np.testing.assert_array_equal(np.asarray(out["index"]), np.arange(8))


def test_logical_spec_drops_axes_that_do_not_divide_and_moves_fsdp():
  from vidjax.configs import SHARDING_RULES
  mesh = {"data": 16, "fsdp": 16, "tensor": 1}
  # UniFormerV2-L local MHRA 1x1x1 conv: 682 = int(1024 / 1.5) input channels.
  spec = mesh_lib.logical_spec((None, None, None, "conv_in", "conv_out"), (1, 1, 1, 682, 1024),
                               SHARDING_RULES, mesh)
  assert tuple(spec) == (None, None, None, None, "fsdp")
  spec = mesh_lib.logical_spec(("embed", "mlp"), (768, 3072), SHARDING_RULES,
                               {"data": 2, "fsdp": 4, "tensor": 2})
  assert tuple(spec) == ("fsdp", "tensor")
  # FocalNet's f: C -> 2C+3 (odd) stays whole on that axis; fsdp still shards C.
  spec = mesh_lib.logical_spec(("embed", "focal_proj"), (96, 195), SHARDING_RULES,
                               {"data": 1, "fsdp": 8, "tensor": 1})
  assert tuple(spec) == ("fsdp", None)
  # A batch of 6 on data=4 x fsdp=2: data does not divide it, fsdp does.
  assert tuple(mesh_lib.logical_spec(("act_batch", None), (6, 3), SHARDING_RULES,
                                     {"data": 4, "fsdp": 2, "tensor": 1})) == ("fsdp", None)


def test_device_augmentation_runs_in_the_train_step(load_config):
  # augment_on='device': the step applies device_aug to the raw crops, so its loss equals the
  # host-augmented batch's loss through the plain step (and differs from the unaugmented crops').
  from vidjax.data import device_aug, pipeline
  c = _tiny_u(load_config, **SGD)
  c.data.train.update(dict(rand_augment="rand-m7-n4-mstd0.5-inc1", flip_prob=0.5,
                           color_jitter_prob=0.8, grayscale_prob=0.2))
  m = c.model
  dev_cfg = loop.resolve_config(c).data
  dev_cfg.train.augment_on = "device"
  loader = pipeline.ClipLoader(None, dev_cfg, train=True)
  rng = np.random.default_rng(0)
  frames = rng.integers(0, 256, (m.num_frames * 2, 48, 64, 3), dtype=np.uint8)
  get = lambda idx, size=None: frames[np.asarray(idx) % len(frames)]
  samples = [loader._train_sample(m.num_frames * 2, get, (48, 64), np.random.default_rng(s))
             for s in range(8)]
  dev = {"clip": np.stack([s[0] for s in samples]),
         "label": rng.integers(0, m.num_classes, (8,)).astype(np.int32)}
  dev.update({k: np.stack([s[1][k] for s in samples]) for k in device_aug.AUG_KEYS})
  aug = dict(color_ops=True, jitter_gray=True, crop_size=int(dev_cfg.crop_size))
  host = {"clip": np.asarray(device_aug.apply(dev, **aug)).round().astype(np.uint8),
          "label": dev["label"]}
  assert not np.array_equal(host["clip"], dev["clip"])
  one = (("data", 1), ("fsdp", 1), ("tensor", 1))
  setup_h, state_h = _setup(c, one, jax.devices()[:1])  # the step donates its state
  c.data.train.augment_on = "device"
  setup_d, state_d = _setup(c, one, jax.devices()[:1])
  _, (mh,) = _steps(setup_h, state_h, [host])
  _, (md,) = _steps(setup_d, state_d, [dev])
  _, (mr,) = _steps(setup_h, loop.init_state(setup_h, seed=0)[0],
                    [{"clip": dev["clip"], "label": dev["label"]}])
  # The host batch is the device output rounded to uint8 (blends give fractions): ~3e-5.
  d_dev = abs(float(md["loss"]) - float(mh["loss"]))
  d_raw = abs(float(mr["loss"]) - float(mh["loss"]))
  assert d_dev < 1e-4 and d_raw > 10 * d_dev, (d_dev, d_raw)


def test_train_step_compiles_once_and_never_talks_to_the_host(u8):
  # Steps after the first reuse the compiled program (same shapes, donated state), and the
  # optimised HLO has no host round trip: no callbacks, infeed/outfeed, send/recv, host memory.
  c, setup, state = u8
  compiles = []

  def listen(event, duration, **_):
    if event == "/jax/core/compile/backend_compile_duration":
      compiles.append(duration)

  jax.monitoring.register_event_duration_secs_listener(listen)
  state, _ = _steps(setup, loop.init_state(setup, seed=0)[0], [_batch(c, 8, 0)])  # compiles
  first = len(compiles)
  state, metrics = _steps(setup, state, [_batch(c, 8, s) for s in (1, 2, 3)])
  jax.block_until_ready(metrics)
  assert len(compiles) == first, f"{len(compiles) - first} recompiles over 3 steps"
  with jax.set_mesh(setup.mesh), nnx.logical_axis_rules(setup.rules):
    hlo = setup.train_step.lower(
        state, jax.device_put(_batch(c, 8, 4), setup.batch_sharding)).compile().as_text()
  for needle in ("callback", "infeed", "outfeed", " send(", " recv(", "S(5)"):
    assert needle not in hlo, needle
