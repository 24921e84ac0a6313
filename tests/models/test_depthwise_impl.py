"""``model.depthwise_impl``: 'shift' (sums of shifted copies, fast on XLA:CPU) computes the same
function, with the same parameters, as 'conv' (grouped ``nnx.Conv``), forward and backward; 'auto'
picks 'shift' on CPU and 'conv' on accelerators."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from tests.models.test_remat_policies import (_model_cfg, assert_same_loss_and_grads,
                                             perturbed_model)
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
    model, x = perturbed_model(network, depthwise_impl=impl, **overrides)
    kinds.append(set(_convs(model).values()))
    with jax.default_matmul_precision("highest"):
      outs.append(nnx.jit(nnx.value_and_grad(lambda m, x: jnp.sum(m(x) ** 2)))(model, x))
  assert kinds == [{nnx.Conv}, {layers.DepthwiseConv}]  # every depthwise conv switched
  assert_same_loss_and_grads(f"{network}{overrides}", *outs)


def test_auto_is_shift_on_cpu_and_conv_on_accelerators():
  assert layers.depthwise_impl("auto", "cpu") == "shift"
  assert layers.depthwise_impl("auto", "gpu") == "conv"
  assert layers.depthwise_impl("auto", "tpu") == "conv"
  assert layers.depthwise_impl("conv", "cpu") == "conv"
  model = models.create(_model_cfg("video_focalnet"), rngs=nnx.Rngs(0))
  assert model.cfg.depthwise_impl == "auto"
  expected = layers.DepthwiseConv if jax.default_backend() == "cpu" else nnx.Conv
  assert set(_convs(model).values()) == {expected}
