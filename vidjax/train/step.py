"""The jitted train and eval steps over split NNX state (pure functions of explicit pytrees).

State layout (``TrainState``): ``params`` (trained ``nnx.Param``), ``frozen`` (the other Params:
a frozen UniFormerV2 backbone; empty otherwise), ``batch_stats`` (``nnx.BatchStat``),
``opt_state`` (optax), ``step`` (micro-steps done; = optimizer steps without accumulation) and
``rng`` (raw key data of the run's base key). The non-weight variables (RNG streams, per-layer
drop-path rates) are constant inputs: every step reseeds the models' ``dropout`` streams with
``fold_in(rng, step)``, so randomness is a pure function of (seed, step) and nothing about it needs
saving. BatchNorm statistics are reduced over the whole global batch inside the jitted step, so
they equal synchronised BN on any mesh.

One step (``make_train_step``): uint8 clips -> normalise (and Mixup/CutMix with smoothed soft
targets when configured, Video-FocalNet) -> train-mode forward -> mean cross-entropy (soft-target
CE with mixing) -> gradients of the trained params -> optax update. A non-finite loss or gradient
norm leaves params, optimizer and statistics unchanged and is reported (``finite``,
``nonfinite_groups``), so the loop can stop with the last good state intact.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from vidjax.data import config as data_config
from vidjax.data import device_aug, mixing


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: nnx.State
  frozen: nnx.State
  batch_stats: nnx.State
  opt_state: Any
  rng: jax.Array


@dataclasses.dataclass(frozen=True)
class Model:
  """The static halves of a split model: train/eval graphdefs and the constant non-weight state."""
  train_graph: nnx.GraphDef
  eval_graph: nnx.GraphDef
  rest: nnx.State
  groups: tuple[str, ...]   # top-level parameter groups, for non-finite reports

  def merge(self, train: bool, params, frozen, batch_stats) -> nnx.Module:
    graph = self.train_graph if train else self.eval_graph
    # Fresh Variable objects in the current trace, so that BatchNorm and `reseed` may update
    # them (NNX refuses to mutate a Variable created at another trace level).
    fresh = lambda tree: jax.tree.map(lambda x: x, tree)
    return nnx.merge(graph, params, fresh(frozen), fresh(batch_stats), _from_host(self.rest))


def _is_var(x) -> bool:
  return isinstance(x, nnx.Variable)


def to_host(rest: nnx.State) -> nnx.State:
  """The constant variables as numpy (RNG keys as raw key data): they enter the jitted steps
  as literals, identical on every process, never as device arrays of one host."""
  def one(v):
    x = v.get_value()
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return v.replace(np.asarray(jax.random.key_data(x)))
    return v.replace(np.asarray(x))
  return jax.tree.map(one, rest, is_leaf=_is_var)


def _from_host(rest: nnx.State) -> nnx.State:
  def one(v):
    x = jnp.asarray(v.get_value())
    return v.replace(jax.random.wrap_key_data(x) if isinstance(v, nnx.RngKey) else x)
  return jax.tree.map(one, rest, is_leaf=_is_var)


def split_model(model: nnx.Module, trainable: Any) -> tuple[Model, nnx.State, nnx.State,
                                                            nnx.State]:
  """(static Model, trained params, frozen params, batch stats) of an ``nnx`` model."""
  model.train()
  train_graph, params, frozen, stats, rest = nnx.split(model, trainable, nnx.Param,
                                                       nnx.BatchStat, ...)
  model.eval()
  eval_graph = nnx.split(model, trainable, nnx.Param, nnx.BatchStat, ...)[0]
  bad = sorted({str(v.tag) for _, v in nnx.to_flat_state(rest) if isinstance(v, nnx.RngKey)}
               - {"dropout", "params"})
  if bad:
    raise ValueError(f"model RNG streams {bad}: build the model with "
                     "nnx.Rngs(params=..., dropout=...) so the step can reseed `dropout`")
  groups = tuple(sorted({str(p[0]) for p, _ in nnx.to_flat_state(params)}))
  return Model(train_graph, eval_graph, rest, groups), params, frozen, stats


def compute_dtype(model_config: Any) -> Any:
  """The activation dtype of ``model_config`` (its ``dtype`` field, variant defaults resolved)."""
  from vidjax import models
  from vidjax.models import layers
  return layers.dtype_from_name(models.model_config(model_config).dtype)


def static_model(model_config: Any) -> tuple[Model, nnx.State, nnx.State, nnx.State]:
  """(static Model, abstract trained params, abstract frozen params, abstract batch stats).

  The graph and the non-weight variables (RNG streams ``params`` / ``dropout``, drop-path rates)
  are built as ``loop.init_state`` builds them; the weights stay ``ShapeDtypeStruct``s.
  """
  from vidjax import models
  from vidjax.train import optim
  trainable = optim.trainable_filter(model_config)
  _, a_params, a_frozen, a_stats, _ = nnx.split(models.abstract(model_config), trainable,
                                                nnx.Param, nnx.BatchStat, ...)
  graphdef, rest = models.initialise(model_config, nnx.Rngs(params=0, dropout=0),
                                     nnx.Not(nnx.Any(nnx.Param, nnx.BatchStat)))
  static, _, _, _ = split_model(nnx.merge(graphdef, a_params, a_frozen, a_stats, rest),
                                trainable)
  return dataclasses.replace(static, rest=to_host(rest)), a_params, a_frozen, a_stats


def cross_entropy(logits: jax.Array, labels: jax.Array, targets: jax.Array | None) -> jax.Array:
  """Mean CE: integer labels (UniFormerV2) or soft targets (timm SoftTargetCrossEntropy)."""
  logits = logits.astype(jnp.float32)
  if targets is None:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return optax.softmax_cross_entropy(logits, targets).mean()


def _uses_soft_targets(mix) -> bool:
  return mix.mixup_alpha > 0 or mix.cutmix_alpha > 0 or mix.label_smoothing > 0


def make_train_step(model: Model, tx: optax.GradientTransformation, schedule: Callable,
                    data_cfg: Any, num_classes: int, compute_dtype: Any,
                    grad_accum_steps: int = 1) -> Callable:
  """``train_step(state, batch) -> (state, metrics)``; jit it with shardings (``loop``)."""
  mean, std, mix = tuple(data_cfg.mean), tuple(data_cfg.std), data_cfg.mixing
  soft = _uses_soft_targets(mix)
  t = data_cfg.train
  # data.train.augment_on='device': the batch carries the host-drawn parameters (aug_*) and the
  # augmentation runs here, before normalisation (vidjax.data.device_aug).
  augment = None
  if data_config.resolve_augment_on(data_cfg)[0] == "device":
    augment = functools.partial(
        device_aug.apply, color_ops=bool(t.rand_augment),
        jitter_gray=bool(t.color_jitter_prob > 0 or t.grayscale_prob > 0),
        crop_size=int(data_cfg.crop_size))

  def train_step(state: TrainState, batch: dict[str, jax.Array]):
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    k_drop, k_mix = jax.random.split(key)
    raw = augment(batch) if augment is not None else batch["clip"]
    clips = mixing.normalize(raw, mean, std, compute_dtype)
    labels = batch["label"]
    targets = None
    if soft:
      clips, targets = mixing.mix_batch(k_mix, clips, labels, num_classes, mix)
      clips = clips.astype(compute_dtype)

    def loss_fn(params):
      m = model.merge(True, params, state.frozen, state.batch_stats)
      nnx.reseed(m, policy="match_shape", dropout=k_drop)
      logits = m(clips)
      return cross_entropy(logits, labels, targets), (logits, nnx.state(m, nnx.BatchStat))

    (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    grad_norm = optax.global_norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    group_finite = jnp.stack([
        jnp.all(jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads[name])]))
        for name in model.groups])
    new = state.replace(step=state.step + 1, params=keep(params, state.params),
                        opt_state=keep(opt_state, state.opt_state),
                        batch_stats=keep(stats, state.batch_stats))
    metrics = dict(loss=loss, grad_norm=grad_norm, finite=finite,
                   nonfinite_groups=~group_finite,
                   lr=schedule(state.step // grad_accum_steps),
                   top1=jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32)))
    return new, metrics

  return train_step


def make_eval_step(model: Model, data_cfg: Any, compute_dtype: Any) -> Callable:
  """``eval_step(weights, batch) -> dict``: per-view softmax summed over the V views of a video.

  ``batch['clip']``: uint8 [B, V, T, H, W, 3]; returns ``scores`` [B, K] (sum of V softmaxes),
  ``top5`` [B, 5], and the batch's ``label``, ``valid``, ``index`` (and ``failed``) passed
  through so results can be gathered once at the end.
  """
  mean, std = tuple(data_cfg.mean), tuple(data_cfg.std)

  def eval_step(weights: tuple[nnx.State, nnx.State, nnx.State], batch: dict[str, jax.Array]):
    m = model.merge(False, *weights)
    clip = batch["clip"]
    b, v = clip.shape[:2]
    x = mixing.normalize(clip.reshape((b * v,) + clip.shape[2:]), mean, std, compute_dtype)
    logits = m(x).astype(jnp.float32).reshape(b, v, -1)
    scores = jax.nn.softmax(logits, axis=-1).sum(axis=1)
    out = {k: batch[k] for k in ("label", "valid", "index", "failed") if k in batch}
    out.update(scores=scores, top5=jax.lax.top_k(scores, min(5, scores.shape[-1]))[1])
    return out

  return eval_step
