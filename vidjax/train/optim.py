"""Optimizers and learning-rate schedules of the two recipes, built from optax.

* ``schedule.name='warmup_cosine'`` (UniFormerV2, SlowFast ``lr_policy.py`` with
  ``COSINE_AFTER_WARMUP``): lr at fractional epoch e = ``warmup_start_lr + e·(base − start)/W`` for
  e < W, else ``end + (base − end)·(1 + cos(π(e − W)/(E − W)))/2``; set every iteration from
  ``e = step / steps_per_epoch``. This is ``optax.warmup_cosine_decay_schedule``.
* ``schedule.name='timm_cosine'`` (Video-FocalNet, timm ``CosineLRScheduler`` with
  ``warmup_prefix=False``, ``t_in_epochs=False``): ``warmup_lr_init + t·(base − init)/W`` for t < W,
  else the cosine ``min + (base − min)(1 + cos(π t / T))/2`` at the *absolute* step t (so the lr
  drops when warmup ends). ``main.py`` calls ``step_update(t)`` after ``optimizer.step()``, so
  update s uses the lr of t = max(s − 1, 0): reproduced here.
* ``optim.name='adamw'``: ``optax.adamw`` (decoupled weight decay, as ``torch.optim.AdamW``);
  ``'sgd'``: coupled weight decay (``add_decayed_weights`` on the gradient, as torch) then
  ``optax.sgd`` with (Nesterov) momentum (torch's buffer ``b = μb + g``, update ``g + μb``).
  Weight decay acts on parameters with >= 2 dims only (:func:`decay_mask`); global-norm clipping
  first (``clip_grad_norm``; torch scales by ``max/(norm + 1e-6)``, optax by ``max/norm``: a
  1e-6 relative difference); ``grad_accum_steps > 1`` wraps everything in ``optax.MultiSteps``
  (gradients averaged over the micro-batches, one update per ``grad_accum_steps`` calls).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import optax
from flax import nnx

from vidjax import models


def learning_rate(schedule: Any, steps_per_epoch: int) -> optax.Schedule:
  """The ``config.schedule`` lr as a function of the optimizer step (0-based)."""
  spe = float(steps_per_epoch)
  warmup = int(round(schedule.warmup_epochs * spe))
  total = max(int(round(schedule.epochs * spe)), 1)
  if schedule.name == "warmup_cosine":
    return optax.warmup_cosine_decay_schedule(
        init_value=schedule.warmup_start_lr, peak_value=schedule.base_lr, warmup_steps=warmup,
        decay_steps=max(total, warmup + 1), end_value=schedule.end_lr)
  if schedule.name == "timm_cosine":
    ramp = optax.linear_schedule(schedule.warmup_start_lr, schedule.base_lr, max(warmup, 1))
    cosine = optax.cosine_decay_schedule(schedule.base_lr, total,
                                         alpha=schedule.end_lr / schedule.base_lr)

    def lr(step):
      t = jnp.maximum(jnp.asarray(step) - 1, 0)  # step_update(t) runs after update t
      return jnp.where(t < warmup, ramp(t), jnp.where(t < total, cosine(t), schedule.end_lr))
    return lr
  raise ValueError(f"schedule.name={schedule.name!r}: expected 'warmup_cosine' or "
                   "'timm_cosine'")


def decay_mask(model_config: Any, params: nnx.State) -> nnx.State:
  """True for parameters that get weight decay: those with >= 2 dims in the unstacked model.

  Biases, LayerNorm / BatchNorm scales, ``class_embedding`` and ``balance`` are 1-D and excluded
  (UniFormerV2 ``ZERO_WD_1D_PARAM``; FocalNet's intended ``ndim == 1 or .bias`` rule);
  ``positional_embedding``, ``temporal_cls_token`` and conv kernels are decayed. With
  ``scan_layers`` the stacked copy of a bias is 2-D, so the rank is read from the loop model.
  """
  loop_cfg = dict(model_config.to_dict() if hasattr(model_config, "to_dict") else model_config,
                  scan_layers=False)
  ranks = {_unindexed(p): len(v.get_value().shape) for p, v in
           nnx.to_flat_state(nnx.state(models.abstract(loop_cfg), nnx.Param))}

  flat = []
  for path, v in nnx.to_flat_state(params):
    key = _unindexed(tuple(path))
    if key not in ranks:
      raise KeyError(f"decay_mask: parameter {'.'.join(map(str, key))} not in the loop model")
    flat.append((path, v.replace(ranks[key] >= 2)))
  return nnx.from_flat_state(flat)


def _unindexed(path: tuple) -> tuple:
  return tuple(k for k in path if not isinstance(k, int))


def make_optimizer(config: Any, params: nnx.State, steps_per_epoch: int
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(transformation, lr schedule) for the trainable ``params`` of ``config``."""
  o = config.optim
  lr = learning_rate(config.schedule, steps_per_epoch)
  mask = decay_mask(config.model, params) if o.weight_decay > 0 else None
  chain: list[optax.GradientTransformation] = []
  if o.clip_grad_norm and o.clip_grad_norm > 0:
    chain.append(optax.clip_by_global_norm(o.clip_grad_norm))
  if o.name == "adamw":
    chain.append(optax.adamw(lr, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay,
                             mask=mask))
  elif o.name == "sgd":
    if o.weight_decay > 0:
      chain.append(optax.add_decayed_weights(o.weight_decay, mask))
    chain.append(optax.sgd(lr, momentum=o.momentum or None, nesterov=bool(o.nesterov)))
  else:
    raise ValueError(f"optim.name={o.name!r}: expected 'adamw' or 'sgd'")
  tx = optax.chain(*chain)
  if o.grad_accum_steps > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=int(o.grad_accum_steps))
  elif o.grad_accum_steps < 1:
    raise ValueError(f"optim.grad_accum_steps={o.grad_accum_steps}: expected >= 1")
  return tx, lr


def trainable_filter(model_config: Any) -> Any:
  """The nnx filter of trained parameters (frozen UniFormerV2 trains only its global branch)."""
  arch = models.ARCHITECTURES[model_config["name"]]
  if hasattr(arch, "trainable_filter"):
    return arch.trainable_filter(models.model_config(model_config))
  return nnx.Param

