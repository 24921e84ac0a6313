"""``train_and_evaluate(config, workdir)``: the training loop behind ``experiments/train.py``.

1. Mesh from ``config.mesh``; parameter, optimizer and batch shardings from
   ``config.sharding_rules`` (``vidjax.train.mesh``).
2. The train split's size fixes ``steps_per_epoch`` = clips per epoch / global batch, hence
   ``num_train_steps`` (when -1) and the fractional-epoch schedule.
3. State: restored from the latest complete checkpoint of ``workdir`` (params, optimizer, BN
   statistics, step, RNG and the data iterator), else initialised (``init_from`` applied).
4. Steps: one ``jax.jit`` with explicit in/out shardings and donated state; each process feeds its
   slice of the global batch; metrics are read back only at log steps, except the previous step's
   ``finite`` flag (one step of lag, so the device never waits for the host).
5. Every ``log_every_steps``: a line in ``metrics.jsonl`` / TensorBoard and on the console;
   every ``eval_every_steps``: single-view validation top-1; every ``checkpoint_every_steps`` and
   at the end: an (async) checkpoint. SIGTERM/SIGINT finish the current step, save and return.
   A non-finite loss or gradient raises :class:`NonFiniteError` without saving.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm
from flax import nnx
from jax.experimental import multihost_utils

from vidjax import models
from vidjax.data import config as data_config
from vidjax.data import pipeline
from vidjax.train import checkpoint as ckpt_lib
from vidjax.train import evaluate as eval_lib
from vidjax.train import mesh as mesh_lib
from vidjax.train import metrics as metrics_lib
from vidjax.train import optim, step as step_lib


class NonFiniteError(RuntimeError):
  """The loss or a gradient became NaN/inf; the last checkpoint was left untouched."""


class Preempted(Exception):
  """Internal: SIGTERM/SIGINT received."""


@dataclasses.dataclass
class Setup:
  """Everything a run needs besides its state: static model halves, shardings, jitted steps."""
  config: ml_collections.ConfigDict
  mesh: jax.sharding.Mesh
  rules: tuple
  model: step_lib.Model
  tx: Any
  schedule: Any
  state_shardings: Any
  batch_sharding: Any
  train_step: Any
  eval_step: Any
  compute_dtype: Any


def resolve_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """An unlocked copy with derived values filled in (none of them stored in the file)."""
  c = ml_collections.ConfigDict(config.to_dict())
  if c.model.num_classes != c.data.num_classes:
    raise ValueError(f"model.num_classes={c.model.num_classes} != data.num_classes="
                     f"{c.data.num_classes}")
  if c.model.num_frames != c.data.num_frames:
    raise ValueError(f"model.num_frames={c.model.num_frames} != data.num_frames="
                     f"{c.data.num_frames}")
  # 'auto' decided once here, so the workdir's config.json records what ran.
  on, canvas = data_config.resolve_augment_on(c.data)
  c.data.train.augment_on, c.data.train.device_canvas = on, canvas
  return c


def _rules(config) -> tuple:
  return tuple((str(k), v if v is None or isinstance(v, str) else tuple(v))
               for k, v in config.sharding_rules)


def _check_batch(config, mesh) -> int:
  """The micro-batch (clips per jitted step) after checking every divisibility constraint."""
  gb, k = int(config.data.batch_size), int(config.optim.grad_accum_steps)
  if gb % k:
    raise ValueError(f"data.batch_size={gb} is not divisible by optim.grad_accum_steps={k}")
  micro = gb // k
  n = mesh_lib.batch_devices(mesh)
  if micro % n:
    raise ValueError(f"data.batch_size / optim.grad_accum_steps = {micro} clips is not divisible "
                     f"by the {n} devices of mesh axes {mesh_lib.batch_axes(mesh)} "
                     f"(config.mesh={tuple(tuple(a) for a in config.mesh)})")
  if micro % jax.process_count():
    raise ValueError(f"micro-batch {micro} not divisible by {jax.process_count()} processes")
  return micro


def build(config: ml_collections.ConfigDict, steps_per_epoch: int,
          mesh: jax.sharding.Mesh | None = None) -> tuple[Setup, Any]:
  """(Setup, abstract TrainState with shardings) for ``config``; nothing is allocated."""
  mesh = mesh_lib.make_mesh(config.mesh) if mesh is None else mesh
  rules = _rules(config)
  compute_dtype = step_lib.compute_dtype(config.model)
  static, a_params, a_frozen, a_stats = step_lib.static_model(config.model)
  tx, schedule = optim.make_optimizer(config, a_params, steps_per_epoch)
  a_opt = jax.eval_shape(tx.init, a_params)
  repl = mesh_lib.replicated(mesh)
  sh_params = mesh_lib.state_shardings(a_params, rules, mesh)
  shardings = step_lib.TrainState(
      step=repl, params=sh_params, frozen=mesh_lib.state_shardings(a_frozen, rules, mesh),
      batch_stats=mesh_lib.state_shardings(a_stats, rules, mesh),
      opt_state=optax_shardings(tx, a_opt, sh_params, repl), rng=repl)
  a_state = step_lib.TrainState(step=jax.ShapeDtypeStruct((), jnp.int32), params=a_params,
                                frozen=a_frozen, batch_stats=a_stats, opt_state=a_opt,
                                rng=jax.ShapeDtypeStruct((2,), jnp.uint32))
  abstract_state = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), a_state, shardings)
  bsh = mesh_lib.batch_sharding(mesh)
  train = step_lib.make_train_step(static, tx, schedule, config.data, config.model.num_classes,
                                   compute_dtype, config.optim.grad_accum_steps)
  train_step = jax.jit(train, in_shardings=(shardings, bsh), out_shardings=(shardings, repl),
                       donate_argnums=0)
  weights_sh = (shardings.params, shardings.frozen, shardings.batch_stats)
  eval_step = eval_lib.jit_eval_step(static, config.data, compute_dtype, weights_sh, bsh)
  return Setup(config, mesh, rules, static, tx, schedule, shardings, bsh, train_step, eval_step,
               compute_dtype), abstract_state


def optax_shardings(tx, abstract_opt, param_shardings, replicated):
  """Optimizer-state shardings: param-shaped leaves like their parameter, the rest replicated."""
  import optax
  return optax.tree_map_params(tx, lambda _, s: s, abstract_opt, param_shardings,
                               transform_non_params=lambda _: replicated)


def init_state(setup: Setup, seed: int) -> tuple[step_lib.TrainState, dict | None]:
  """A freshly initialised TrainState laid out with ``setup.state_shardings`` (and the
  ``init_from`` report, if one was applied).

  The model is initialised on the default device (one program at XLA's lowest optimisation level,
  ``models.create``; the same values on every process), ``config.init_from`` is applied to it,
  and it is laid out shard by shard; the optimizer state is created directly sharded.
  """
  config = setup.config
  k_params, k_drop = jax.random.split(jax.random.key(seed))
  model = models.create(config.model, rngs=nnx.Rngs(params=k_params, dropout=k_drop))
  report = None
  if config.init_from.checkpoint:
    report = apply_init_from(config.init_from, model)
  _, params, frozen, stats = step_lib.split_model(model, optim.trainable_filter(config.model))
  sh = setup.state_shardings
  params = mesh_lib.put_global(params, sh.params)
  opt_state = jax.jit(setup.tx.init, out_shardings=sh.opt_state)(params)
  rng = jax.random.key_data(jax.random.fold_in(jax.random.key(seed), 1))
  state = step_lib.TrainState(
      step=mesh_lib.put_global(np.int32(0), sh.step), params=params,
      frozen=mesh_lib.put_global(frozen, sh.frozen),
      batch_stats=mesh_lib.put_global(stats, sh.batch_stats),
      opt_state=opt_state, rng=mesh_lib.put_global(np.asarray(rng), sh.rng))
  return state, report


def apply_init_from(init: Any, model: nnx.Module) -> dict:
  """``config.init_from``: overwrites ``model``'s weights from a checkpoint, strictly."""
  _, source, _ = ckpt_lib.read_weights(init.checkpoint)
  target = models.checkpoint.flat_weights(model)
  new, report = ckpt_lib.init_weights(init, target, source, ckpt_lib.class_axes(model),
                                      init.checkpoint)
  models.checkpoint.assign_flat(model, new)
  return report


@contextlib.contextmanager
def _preemption_guard():
  """Turns SIGTERM/SIGINT into a flag the loop checks after each step."""
  flag = {"set": False}

  def handler(signum, frame):
    del frame
    logging.warning("signal %d received: finishing the current step, saving, exiting", signum)
    flag["set"] = True

  previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield flag
  finally:
    for s, h in previous.items():
      signal.signal(s, h)


def _preempted(flag: dict, sync: bool) -> bool:
  """Whether to stop. With several processes all must agree: the flags are combined at ``sync``
  steps only (log / checkpoint steps), as the all-gather waits for the device."""
  if jax.process_count() == 1:
    return flag["set"]
  if not sync:
    return False
  return bool(np.asarray(multihost_utils.process_allgather(np.asarray(flag["set"]))).any())


def _val_config(config) -> ml_collections.ConfigDict:
  d = ml_collections.ConfigDict(config.data.to_dict())
  d.eval.update(config.val.to_dict())
  return d


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       progress: bool = False) -> dict[str, Any]:
  """Trains ``config`` in ``workdir`` (resuming from its latest checkpoint); returns the last
  logged train metrics and eval results. ``progress``: a tqdm bar (step/total, ETA, the progress
  line as postfix) instead of a log line per logged step."""
  config = resolve_config(config)
  primary = jax.process_index() == 0
  log = logging.info if primary else (lambda *a, **k: None)
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  mesh = mesh_lib.make_mesh(config.mesh)
  micro = _check_batch(config, mesh)
  data_cfg = ml_collections.ConfigDict(config.data.to_dict())
  data_cfg.batch_size = micro
  train_source = pipeline.make_source(data_cfg, "train")
  clips_per_epoch = len(train_source) * int(config.data.train.num_samples)
  steps_per_epoch = max(clips_per_epoch // int(config.data.batch_size), 1)
  num_steps = (int(config.num_train_steps) if config.num_train_steps > 0
               else max(int(round(config.schedule.epochs * steps_per_epoch)), 1))
  eval_every = steps_per_epoch if config.eval_every_steps < 0 else int(config.eval_every_steps)
  accum = int(config.optim.grad_accum_steps)

  setup, abstract_state = build(config, steps_per_epoch, mesh)
  if primary:
    with open(os.path.join(workdir, ckpt_lib.CONFIG_FILE), "w") as f:
      json.dump(ckpt_lib._json(config), f, indent=1)
  train_iter = iter(pipeline.train_dataset(data_cfg, train_source))
  checkpointer = ckpt_lib.Checkpointer(workdir, config)
  writer = metrics_lib.Writer(workdir, enabled=primary)
  val_cfg = _val_config(config)
  val_cfg.eval_batch_size = eval_lib.eval_batch_size(config, mesh)
  val_source = None
  if eval_every > 0:
    val_source = pipeline.make_source(val_cfg, "eval")

  start = checkpointer.latest_step()
  if start is not None:
    restored = checkpointer.restore(start, abstract_state, train_iter)
    state = step_lib.TrainState(**restored)
    log("resumed from %s/%d (step %d of %d)", checkpointer.directory, start, start, num_steps)
  else:
    start = 0
    state, report = init_state(setup, int(config.seed))
    if report is not None and primary:
      with open(os.path.join(workdir, "init_from.json"), "w") as f:
        json.dump(report, f, indent=1)
    if not config.init_from.checkpoint and config.init_from.expected:
      logging.warning("init_from.checkpoint is empty: training from random initialisation; the "
                      "released recipe starts from %s", config.init_from.expected)
  n_params = sum(math.prod(x.shape) for x in jax.tree.leaves(abstract_state.params))
  log("training %s (%s trained params) for %d steps (%d per epoch, %d clips per step, %d "
      "micro-steps of %d) on %d devices, mesh %s", config.model.name, f"{n_params:,}",
      num_steps, steps_per_epoch, config.data.batch_size, accum, micro, jax.device_count(),
      dict(mesh.shape))

  bar = None
  if progress and primary:
    bar = tqdm.tqdm(total=num_steps, initial=start, unit="step", file=sys.stderr,
                    desc=os.path.basename(workdir), dynamic_ncols=True)
  bad_path = os.path.join(workdir, "bad_videos.txt")
  last = {"train": None, "eval": None}
  t_interval, wait, steps_in_interval = time.time(), 0.0, 0
  stats = {"num_replaced": 0, "num_blank": 0}
  pending_finite = None
  step = start
  try:
    with jax.set_mesh(mesh), nnx.logical_axis_rules(setup.rules), _preemption_guard() as flag:
      while step < num_steps:
        losses = []
        for _ in range(accum):
          t0 = time.time()
          batch = next(train_iter)
          wait += time.time() - t0
          _host_stats(batch, stats, train_source, bad_path, step, primary)
          device_batch = pipeline.to_global({"clip": batch["clip"], "label": batch["label"]},
                                            setup.batch_sharding)
          state, m = setup.train_step(state, device_batch)
          losses.append(m["loss"])
        if pending_finite is not None:
          _check_finite(*pending_finite, setup.model.groups)
        pending_finite = (step + 1, m)
        step += 1
        steps_in_interval += 1
        if bar is not None:
          bar.update(1)
        preempted = _preempted(flag, step % config.log_every_steps == 0
                               or step % config.checkpoint_every_steps == 0)
        if step % config.log_every_steps == 0 or step == num_steps or preempted:
          _check_finite(*pending_finite, setup.model.groups)
          host = jax.device_get(m)
          elapsed = time.time() - t_interval
          scalars = dict(
              loss=float(np.mean(jax.device_get(losses))), lr=float(host["lr"]),
              grad_norm=float(host["grad_norm"]), top1=float(host["top1"]),
              clips_per_s=steps_in_interval * config.data.batch_size / max(elapsed, 1e-9),
              step_time_s=elapsed / steps_in_interval,
              data_wait_fraction=min(wait / max(elapsed, 1e-9), 1.0), **stats)
          writer.write(step, scalars)
          if bar is not None:
            bar.set_postfix_str(metrics_lib.progress_postfix(scalars), refresh=False)
          else:
            log(metrics_lib.progress_line(step, num_steps, scalars,
                                          (num_steps - step) * scalars["step_time_s"]))
          last["train"] = dict(step=step, **scalars)
          t_interval, wait, steps_in_interval = time.time(), 0.0, 0
          stats = {"num_replaced": 0, "num_blank": 0}
        if val_source is not None and (step % eval_every == 0 or step == num_steps):
          last["eval"] = _validate(setup, state, val_cfg, val_source, writer, step, log)
          t_interval = time.time()
        if step % config.checkpoint_every_steps == 0 or step == num_steps or preempted:
          _check_finite(*pending_finite, setup.model.groups)
          checkpointer.save(step, state, train_iter)
        if preempted:
          raise Preempted
  except Preempted:
    log("preempted at step %d: checkpoint saved", step)
  finally:
    if bar is not None:
      bar.close()
    checkpointer.wait()
    checkpointer.close()
    writer.close()
    pipeline.close(train_iter)
  return {"step": step, "num_steps": num_steps, "train": last["train"], "eval": last["eval"],
          "preempted": step < num_steps}


def _check_finite(step: int, metrics: dict, groups: tuple[str, ...]) -> None:
  if bool(jax.device_get(metrics["finite"])):
    return
  bad = [g for g, b in zip(groups, np.asarray(jax.device_get(metrics["nonfinite_groups"])))
         if b]
  raise NonFiniteError(
      f"step {step}: loss={float(jax.device_get(metrics['loss']))}, grad_norm="
      f"{float(jax.device_get(metrics['grad_norm']))}; non-finite gradients in parameter "
      f"groups {bad or 'none (the loss itself)'}; the update was not applied and no checkpoint "
      "was written after the last good one")


def _host_stats(batch: dict, stats: dict, source: Any, bad_path: str, step: int,
                primary: bool) -> None:
  """Per-interval counts of replaced / blank clips; replaced paths appended to bad_videos.txt."""
  if "num_replaced" in batch:
    stats["num_replaced"] += int(np.sum(batch["num_replaced"]))
  if "blank" in batch:
    stats["num_blank"] += int(np.sum(batch["blank"]))
  if "replaced" not in batch:
    return
  idx = np.asarray(batch["replaced"]).reshape(-1)
  if jax.process_count() > 1:
    idx = np.asarray(multihost_utils.process_allgather(idx)).reshape(-1)
  idx = idx[idx >= 0]
  if primary and idx.size:
    with open(bad_path, "a") as f:
      for i in idx:
        f.write(f"{step}\t{source.describe(int(i)) if hasattr(source, 'describe') else i}\n")


def _validate(setup: Setup, state, val_cfg, source, writer, step: int, log) -> dict:
  weights = (state.params, state.frozen, state.batch_stats)
  out = eval_lib.evaluate(setup.eval_step, weights, val_cfg, source, setup.batch_sharding,
                          setup.config.model.num_classes)
  writer.write(step, {"top1": out["top1"], "top5": out["top5"],
                      "num_videos": out["num_videos"], "num_failed": out["num_failed"]},
               split="val")
  log("step %d: val top-1 %.4f (%d videos, %d undecodable)", step, out["top1"],
      out["num_videos"], out["num_failed"])
  return {k: v for k, v in out.items() if k != "confusion"}
