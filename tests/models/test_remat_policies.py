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


def _loss_fn(network: str, policy: str):
  """Pure ``loss(state, x)`` of the network's tiny model (dropout off) and its input."""
  cfg = _model_cfg(network, remat_policy=policy)
  model = models.create(cfg, rngs=nnx.Rngs(0))
  # Non-trivial weights: zero-initialised projections would hide gradient differences.
  state = nnx.state(model, nnx.Param)
  keys = iter(jax.random.split(jax.random.key(3), len(jax.tree.leaves(state))))
  nnx.update(model, jax.tree.map(lambda p: p + 0.2 * jax.random.normal(next(keys), p.shape,
                                                                         p.dtype), state))
  model.eval()
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  size, frames = cfg["image_size"], cfg.get("num_frames") or cfg.get("t_size")
  x = jax.random.uniform(jax.random.key(1), (2, frames, size, size, 3), jnp.float32, -1, 1)

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
  g1, g2 = nnx.to_pure_dict(g1), nnx.to_pure_dict(g2)
  worst = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), g1, g2)))
  scale = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(g1))
  print(f"{network} {policy}: loss {float(l1):.6f} / {float(l2):.6f}, "
        f"max |Δgrad| {worst:.2e} (max |grad| {scale:.2e})")
  assert abs(float(l1) - float(l2)) <= 1e-5 * abs(float(l1))
  assert worst <= 1e-4 * scale  # XLA fuses the recomputed convolutions differently: fp32 reorder

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
