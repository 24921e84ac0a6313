"""``model.depthwise_impl``: 'shift' (sums of shifted copies, fast on XLA:CPU) computes the same
function, with the same parameters, as 'conv' (grouped ``nnx.Conv``), forward and backward; 'auto'
picks 'shift' on CPU and 'conv' on accelerators."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from tests.models.test_remat_policies import _model_cfg
from vidjax import models
from vidjax.models import layers


def _convs(model) -> dict[str, type]:
  return {"/".join(map(str, path)): type(m) for path, m in nnx.iter_graph(model)
          if isinstance(m, nnx.Conv) and m.feature_group_count > 1}


@pytest.mark.parametrize("network,overrides", [
    ("uniformerv2", {}),                                   # LT_MHRA (BN + 3x1x1) and DPE 3x3x3
    ("video_focalnet", {}),                                # spatial 3x3 focal convs
    ("video_focalnet", {"design": "divided"}),             # + depthwise temporal convs
], ids=["uniformerv2", "video_focalnet", "video_focalnet-divided"])
def test_shift_equals_conv_forward_and_backward(network, overrides):
  outs, kinds = [], []
  for impl in ("conv", "shift"):
    model = models.create(_model_cfg(network, depthwise_impl=impl, **overrides),
                          rngs=nnx.Rngs(0))
    state = nnx.state(model, nnx.Param)
    keys = iter(jax.random.split(jax.random.key(3), len(jax.tree.leaves(state))))
    nnx.update(model, jax.tree.map(
        lambda p: p + 0.2 * jax.random.normal(next(keys), p.shape, p.dtype), state))
    model.eval()
    kinds.append(set(_convs(model).values()))
    cfg = model.cfg
    frames = getattr(cfg, "num_frames", None) or cfg.t_size
    size = getattr(cfg, "image_size", None) or cfg.img_size
    x = jax.random.uniform(jax.random.key(1), (2, frames, size, size, 3), jnp.float32, -1, 1)
    with jax.default_matmul_precision("highest"):
      outs.append(nnx.jit(nnx.value_and_grad(lambda m, x: jnp.sum(m(x) ** 2)))(model, x))
  assert kinds == [{nnx.Conv}, {layers.DepthwiseConv}]  # every depthwise conv switched
  (l1, g1), (l2, g2) = outs
  g1, g2 = nnx.to_pure_dict(g1), nnx.to_pure_dict(g2)
  worst = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), g1, g2)))
  scale = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(g1))
  print(f"{network}{overrides}: loss {float(l1):.6f} / {float(l2):.6f}, max |Δgrad| "
        f"{worst:.2e} (max |grad| {scale:.2e})")
  assert abs(float(l1) - float(l2)) <= 1e-5 * abs(float(l1))
  assert worst <= 1e-4 * scale  # summation order differs: fp32 rounding only


def test_auto_is_shift_on_cpu_and_conv_on_accelerators():
  assert layers.depthwise_impl("auto", "cpu") == "shift"
  assert layers.depthwise_impl("auto", "gpu") == "conv"
  assert layers.depthwise_impl("auto", "tpu") == "conv"
  assert layers.depthwise_impl("conv", "cpu") == "conv"
  model = models.create(_model_cfg("video_focalnet"), rngs=nnx.Rngs(0))
  assert model.cfg.depthwise_impl == "auto"
  expected = layers.DepthwiseConv if jax.default_backend() == "cpu" else nnx.Conv
  assert set(_convs(model).values()) == {expected}
