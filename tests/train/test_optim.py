"""Schedules, weight-decay masks and optimizer steps against the official formulas and torch.

UniFormerV2's schedule is SlowFast's ``lr_policy.get_lr_at_epoch`` (re-implemented below from
the official file: it is not a package); Video-FocalNet's is timm's real ``CosineLRScheduler``
driven exactly as ``main.py`` drives it (``step_update`` after ``optimizer.step()``). Optimizer
steps are compared with ``torch.optim.AdamW`` / ``SGD(nesterov=True)`` on the same gradients,
with ``clip_grad_norm_`` and the official parameter groups.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from timm.scheduler.cosine_lr import CosineLRScheduler

from vidjax import models
from vidjax.train import optim


def slowfast_lr(epoch, base, warmup, epochs, start, end):
  """slowfast/utils/lr_policy.py: cosine with COSINE_AFTER_WARMUP, linear warmup to it."""
  def cosine(e):
    return end + (base - end) * (math.cos(math.pi * (e - warmup) / (epochs - warmup)) + 1) * 0.5
  if epoch < warmup:
    return epoch * (cosine(warmup) - start) / warmup + start
  return cosine(epoch)


def test_uniformerv2_schedule_equals_slowfast_lr_policy_at_fractional_epochs(load_config):
  config = load_config("uniformerv2/k400_b16_8x224.py")
  s, spe = config.schedule, 37  # 37 iterations per epoch: warmup ends mid-way through nothing
  lr = optim.learning_rate(s, spe)
  steps = [0, 1, 17, 5 * spe - 1, 5 * spe, 5 * spe + 1, 20 * spe + 11, 55 * spe - 1]
  for step in steps:
    want = slowfast_lr(step / spe, s.base_lr, s.warmup_epochs, s.epochs, s.warmup_start_lr,
                       s.end_lr)
    got = float(lr(step))
    assert got == pytest.approx(want, rel=1e-5, abs=1e-12), (step, got, want)
  assert float(lr(0)) == pytest.approx(1e-6) and float(lr(5 * spe)) == pytest.approx(1e-5)


def test_frozen_schedule_without_warmup_starts_at_base_lr(load_config):
  config = load_config("uniformerv2/frozen_k400_l14_8x336.py")
  lr = optim.learning_rate(config.schedule, 10)
  assert float(lr(0)) == pytest.approx(8e-4)
  assert float(lr(250)) == pytest.approx(slowfast_lr(25.0, 8e-4, 0.0, 50.0, 1e-6, 1e-6),
                                         rel=1e-5)


def test_video_focalnet_schedule_equals_timm_cosine_with_warmup_prefix_false_and_step_lag(load_config):
  config = load_config("video_focalnet/k400_tiny.py")
  s, spe = config.schedule, 5
  lr = optim.learning_rate(s, spe)
  p = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([p], lr=s.base_lr, momentum=0.9, nesterov=True)
  sched = CosineLRScheduler(opt, t_initial=int(s.epochs * spe), lr_min=s.end_lr,
                            warmup_lr_init=s.warmup_start_lr, warmup_t=int(s.warmup_epochs * spe),
                            cycle_limit=1, t_in_epochs=False)
  used = []
  for step in range(int(s.epochs * spe)):
    used.append(opt.param_groups[0]["lr"])  # the lr optimizer.step() uses at this iteration
    opt.step()
    sched.step_update(step)                    # main.py: after optimizer.step()
  ours = np.asarray(jax.vmap(lr)(jnp.arange(len(used))))
  np.testing.assert_allclose(ours, np.asarray(used), rtol=1e-5, atol=1e-12)
  # The quirk: at the end of warmup the lr drops from ~base to the cosine at t = warmup.
  w = int(s.warmup_epochs * spe)
  assert used[w] == pytest.approx(s.base_lr * (w - 1) / w + s.warmup_start_lr / w, rel=1e-3)
  drop = s.end_lr + 0.5 * (s.base_lr - s.end_lr) * (1 + math.cos(math.pi / 6))
  assert used[w + 1] == pytest.approx(drop, rel=1e-3)


def _decay_names(config):
  model = models.abstract(config.model)
  params = nnx.state(model, nnx.Param)
  mask = optim.decay_mask(config.model, params)
  return {".".join(map(str, p)): bool(v.get_value()) for p, v in nnx.to_flat_state(mask)}


@pytest.mark.parametrize("scan", [False, True])
def test_uniformerv2_decay_mask_is_zero_wd_1d_param(scan, load_config):
  config = load_config("uniformerv2/tiny_test.py")
  config.model.scan_layers = scan
  names = _decay_names(config)
  r = "transformer.resblocks." + ("" if scan else "0.")
  decayed = ["positional_embedding", "conv1.kernel", "transformer.temporal_cls_token",
             r + "attn.q_proj.kernel", r + "mlp.c_fc.kernel",
             r + "lmhra1.pos_embed.layers.1.kernel", "transformer.dpe.0.kernel",
             "transformer.dec.0.attn.q_proj.kernel", "transformer.proj.fc.kernel"]
  not_decayed = ["class_embedding", "transformer.balance", "ln_pre.scale", "ln_pre.bias",
                 r + "attn.q_proj.bias", r + "ln_1.scale", r + "lmhra1.pos_embed.layers.0.scale",
                 r + "lmhra1.pos_embed.layers.0.bias", "transformer.dpe.0.bias",
                 "transformer.proj.norm.scale", "transformer.proj.fc.bias"]
  for n in decayed:
    assert names[n], n
  for n in not_decayed:
    assert not names[n], n
  assert sum(names.values()) == sum(1 for n in names if n.endswith("kernel")) + 2


def test_video_focalnet_decay_mask_intended_rule_and_released_no_op(load_config):
  config = load_config("video_focalnet/tiny_test.py")
  names = _decay_names(config)
  assert names["layers.0.blocks.0.modulation.f.kernel"]
  assert names["layers.0.blocks.0.modulation.focal_layers_temporal.0.kernel"]
  assert names["patch_embed.proj.kernel"] and names["head.kernel"]
  assert not names["layers.0.blocks.0.modulation.f.bias"]
  assert not names["layers.0.blocks.0.norm1.scale"] and not names["head.bias"]
  assert config.optim.weight_decay == 0.0  # released: every parameter in the wd=0 group


def _torch_params(params):
  flat = [(".".join(map(str, p)), np.asarray(v.get_value())) for p, v in
          nnx.to_flat_state(params)]
  return {n: torch.nn.Parameter(torch.tensor(a)) for n, a in flat}


def _run_both(config, torch_opt_fn, steps=3, spe=4, grad_scale=1.0):
  model = models.create(config.model, rngs=nnx.Rngs(0))
  params = nnx.state(model, nnx.Param)
  tx, lr = optim.make_optimizer(config, params, spe)
  state = tx.init(params)
  update = jax.jit(lambda g, s, p: (lambda u, s: (jax.tree.map(jnp.add, p, u), s))(
      *tx.update(g, s, p)))
  tparams = _torch_params(params)
  mask = {".".join(map(str, p)): bool(v.get_value()) for p, v in
          nnx.to_flat_state(optim.decay_mask(config.model, params))}
  topt = torch_opt_fn(tparams, mask)
  rng = np.random.default_rng(0)
  for step in range(steps):
    gflat = [(p, v.replace(jnp.asarray(grad_scale * rng.standard_normal(v.get_value().shape),
                                       jnp.float32))) for p, v in nnx.to_flat_state(params)]
    grads = nnx.from_flat_state(gflat)
    for p, v in gflat:
      tparams[".".join(map(str, p))].grad = torch.tensor(np.asarray(v.get_value()))
    params, state = update(grads, state, params)
    for g in topt.param_groups:
      g["lr"] = float(lr(step))
    torch.nn.utils.clip_grad_norm_(list(tparams.values()), config.optim.clip_grad_norm)
    topt.step()
  worst = 0.0
  for p, v in nnx.to_flat_state(params):
    t = tparams[".".join(map(str, p))].detach().numpy()
    worst = max(worst, float(np.max(np.abs(np.asarray(v.get_value()) - t))))
  return worst, params


def test_adamw_step_equals_torch_adamw_with_zero_wd_1d_groups_and_clip_20(load_config):
  config = load_config("uniformerv2/tiny_test.py")
  config.schedule.update(base_lr=1e-3, warmup_epochs=1.0)

  def torch_opt(tparams, mask):
    groups = [{"params": [p for n, p in tparams.items() if mask[n]], "weight_decay": 0.05},
              {"params": [p for n, p in tparams.items() if not mask[n]], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)

  # Gradients of global norm ~ 600 > 20, so clipping is active at every step.
  worst, _ = _run_both(config, torch_opt, grad_scale=1.0)
  print(f"AdamW vs torch after 3 steps: max |dparam| = {worst:.2e}")
  assert worst < 2e-6


def test_sgd_nesterov_step_equals_torch_sgd_with_clip_5_released_and_intended_wd(load_config):
  finals = {}
  for weight_decay in (0.0, 0.1):
    config = load_config("video_focalnet/tiny_test.py")
    config.optim.weight_decay = weight_decay
    config.schedule.update(base_lr=0.5, warmup_epochs=0.0)

    def torch_opt(tparams, mask):
      groups = [{"params": [p for n, p in tparams.items() if mask[n]],
                 "weight_decay": weight_decay},
                {"params": [p for n, p in tparams.items() if not mask[n]], "weight_decay": 0.0}]
      return torch.optim.SGD(groups, lr=0.1, momentum=0.9, nesterov=True)

    worst, finals[weight_decay] = _run_both(config, torch_opt)
    print(f"SGD (wd {weight_decay}) vs torch after 3 steps: max |dparam| = {worst:.2e}")
    assert worst < 1e-6
  # The decay really acts (on >= 2-D parameters only).
  changed = {".".join(map(str, p)): bool(np.any(np.asarray(v.get_value()) != np.asarray(w)))
             for (p, v), w in zip(nnx.to_flat_state(finals[0.1]),
                                  [u.get_value() for _, u in nnx.to_flat_state(finals[0.0])])}
  assert changed["head.kernel"] and not changed["head.bias"]
