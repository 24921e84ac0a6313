"""Named remat policies (``model.remat_policy='save_attention' | 'save_projections'``).

Each must compute the same loss and gradients as no remat (fp32, highest matmul precision:
recomputation only reorders sums), and save exactly the activations its name promises: the
residuals that ``jax.ad_checkpoint.print_saved_residuals`` lists for the blocks' backward pass.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import io
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.ad_checkpoint import print_saved_residuals

from vidjax import models
from vidjax.models import layers

ROOT = pathlib.Path(__file__).resolve().parents[2]
NETWORKS = {"uniformerv2": "configs/uniformerv2/tiny_test.py",
            "video_focalnet": "configs/video_focalnet/tiny_test.py"}
# Names each network tags (layers.ACTIVATION_NAMES); the policies save subsets of them.
TAGGED = {"uniformerv2": {"attn_qkv", "attn_out", "mlp_hidden"},
          "video_focalnet": {"modulation_f", "modulator", "mlp_hidden"}}
SAVED = {"save_attention": {"attn_qkv", "attn_out"},
         "save_projections": set(layers.ACTIVATION_NAMES)}


def _model_cfg(network: str, **overrides) -> dict:
  path = ROOT / NETWORKS[network]
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return dict(module.get_config().model.to_dict(), **overrides)


def perturbed_model(network: str, **overrides) -> tuple[nnx.Module, jax.Array]:
  """The network's tiny model in eval mode with non-trivial weights (zero-initialised
  projections would hide gradient differences), and an input clip for it."""
  cfg = _model_cfg(network, **overrides)
  model = models.create(cfg, rngs=nnx.Rngs(0))
  state = nnx.state(model, nnx.Param)
  keys = iter(jax.random.split(jax.random.key(3), len(jax.tree.leaves(state))))
  nnx.update(model, jax.tree.map(lambda p: p + 0.2 * jax.random.normal(next(keys), p.shape,
                                                                         p.dtype), state))
  model.eval()
  size, frames = cfg["image_size"], cfg["num_frames"]
  return model, jax.random.uniform(jax.random.key(1), (2, frames, size, size, 3), jnp.float32,
                                   -1, 1)


def assert_same_loss_and_grads(label: str, ref, new) -> None:
  """(loss, grads) pairs equal up to fp32 reordering: loss 1e-5, grads 1e-4 of the largest."""
  (l1, g1), (l2, g2) = ref, new
  g1, g2 = nnx.to_pure_dict(g1), nnx.to_pure_dict(g2)
  worst = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), g1, g2)))
  scale = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(g1))
  print(f"{label}: loss {float(l1):.6f} / {float(l2):.6f}, max |Δgrad| {worst:.2e} "
        f"(max |grad| {scale:.2e})")
  assert abs(float(l1) - float(l2)) <= 1e-5 * abs(float(l1))
  # Recomputed / rewritten convolutions fuse differently in XLA: fp32 reordering only.
  assert worst <= 1e-4 * scale


def _loss_fn(network: str, policy: str):
  """Pure ``loss(params, x)`` of the network's perturbed tiny model, its params and input."""
  model, x = perturbed_model(network, remat_policy=policy)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def loss(p, x):
    # The non-parameter state enters as an array argument, not a closed-over constant.
    return jnp.sum(nnx.merge(graphdef, p, jax.tree.map(jnp.asarray, rest))(x) ** 2)

  return loss, params, x


@pytest.mark.parametrize("policy", sorted(SAVED))
@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_named_policy_equals_no_remat_and_saves_its_names(network, policy):
  loss_ref, params, x = _loss_fn(network, "none")
  loss_rem, params_rem, _ = _loss_fn(network, policy)
  with jax.default_matmul_precision("highest"):
    l1, g1 = jax.jit(jax.value_and_grad(loss_ref))(params, x)
    l2, g2 = jax.jit(jax.value_and_grad(loss_rem))(params_rem, x)
  assert_same_loss_and_grads(f"{network} {policy}", (l1, g1), (l2, g2))

  # Tags outside the rematerialised blocks (UniFormerV2's global UniBlocks) are saved under
  # every policy: a policy's own effect is the named residuals beyond those of 'full'.
  full = _named_counts(*_loss_fn(network, "full"))
  mine = _named_counts(loss_rem, params_rem, x)
  kept = {n for n in layers.ACTIVATION_NAMES if mine[n] > full[n]}
  print(f"named residuals: {policy} {dict(mine)}, full {dict(full)}")
  assert kept == SAVED[policy] & TAGGED[network]


def _residuals(loss, params, x) -> list[str]:
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    print_saved_residuals(loss, params, x)
  return out.getvalue().splitlines()


def _named_counts(loss, params, x) -> collections.Counter:
  return collections.Counter(n for line in _residuals(loss, params, x)
                             for n in layers.ACTIVATION_NAMES if f"named '{n}'" in line)


def test_named_policies_save_less_than_no_remat():
  """On the tiny UniFormerV2, residual bytes: none > save_projections > save_attention > full."""
  sizes = {}
  for policy in ("none", "save_projections", "save_attention", "full"):
    sizes[policy] = sum(_bytes(line) for line in _residuals(*_loss_fn("uniformerv2", policy))
                        if "from the argument" not in line)
  print("saved residual bytes:", sizes)
  assert sizes["none"] > sizes["save_projections"] > sizes["save_attention"] > sizes["full"]


def _bytes(line: str) -> int:
  """Bytes of a ``print_saved_residuals`` line such as ``f32[2,4,64] named 'x' from ...``."""
  head = line.split()[0]
  dtype, _, dims = head.partition("[")
  count = int(np.prod([int(d) for d in dims.rstrip("]").split(",") if d])) if dims else 1
  return count * {"f32": 4, "bf16": 2, "f16": 2, "s32": 4, "u32": 4, "bool": 1}.get(dtype, 4)
