"""convert/uniformerv2_layout.py: the official state-dict table and its exact Flax mapping."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from flax import nnx

from convert import uniformerv2_layout as layout
from vidjax import models

TINY = dict(name="uniformerv2", width=64, layers=4, heads=4, n_head=4, patch_size=8, image_size=32,
            num_frames=4, num_classes=10, temporal_downsample=True, no_lmhra=False,
            return_list=(1, 2, 3))
SSV2_B16 = dict(name="uniformerv2", num_frames=16, temporal_downsample=True, no_lmhra=False,
                n_layers=8, num_classes=174)


def cfg_of(d):
  return models.model_config(d)


def flat_weights(model):
  return {p: np.asarray(v.get_value()) for p, v in
          nnx.to_flat_state(nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat)))}


def random_official(cfg, seed=0):
  rng = np.random.default_rng(seed)
  return {k: (np.asarray(7, np.int64) if k.endswith("num_batches_tracked")
              else rng.standard_normal(s).astype(np.float32))
          for k, s in layout.official_shapes(cfg).items()}


def test_b16_k400_table_has_the_219_official_keys_and_shapes():
  shapes = layout.official_shapes(cfg_of(dict(name="uniformerv2")))
  assert len(shapes) == 219
  assert list(shapes)[:5] == ["backbone.class_embedding", "backbone.positional_embedding",
                              "backbone.conv1.weight", "backbone.ln_pre.weight",
                              "backbone.ln_pre.bias"]
  expected = {
      "backbone.class_embedding": (768,),
      "backbone.positional_embedding": (197, 768),
      "backbone.conv1.weight": (768, 3, 1, 16, 16),
      "backbone.transformer.temporal_cls_token": (1, 1, 768),
      "backbone.transformer.balance": (768,),
      "backbone.transformer.resblocks.0.attn.in_proj_weight": (2304, 768),
      "backbone.transformer.resblocks.11.attn.in_proj_bias": (2304,),
      "backbone.transformer.resblocks.5.attn.out_proj.weight": (768, 768),
      "backbone.transformer.resblocks.7.ln_2.bias": (768,),
      "backbone.transformer.resblocks.11.mlp.c_fc.weight": (3072, 768),
      "backbone.transformer.resblocks.3.mlp.c_proj.weight": (768, 3072),
      "backbone.transformer.dpe.3.weight": (768, 1, 3, 3, 3),
      "backbone.transformer.dpe.0.bias": (768,),
      "backbone.transformer.dec.0.attn.in_proj_weight": (2304, 768),
      "backbone.transformer.dec.3.attn.out_proj.bias": (768,),
      "backbone.transformer.dec.2.ln_3.weight": (768,),
      "backbone.transformer.dec.1.mlp.c_fc.weight": (3072, 768),
      "backbone.transformer.dec.1.mlp.c_proj.weight": (768, 3072),
      "backbone.transformer.proj.0.weight": (768,),
      "backbone.transformer.proj.2.weight": (400, 768),
      "backbone.transformer.proj.2.bias": (400,),
  }
  for k, s in expected.items():
    assert shapes[k] == s, k
  assert not any("lmhra" in k or "dec.4" in k or "resblocks.12" in k for k in shapes)


def test_sth_and_l14_and_frozen_tables():
  ssv2 = layout.official_shapes(cfg_of(SSV2_B16))
  # 219 - 4·(2 + 14) + 8·(2 + 14) + 12 blocks · 2 lmhra · 11 keys.
  assert len(ssv2) == 219 + 4 * 16 + 264 == 547
  lm = "backbone.transformer.resblocks.11.lmhra2.pos_embed"
  assert ssv2["backbone.conv1.weight"] == (768, 3, 3, 16, 16)
  assert ssv2[f"{lm}.0.running_var"] == (768,) and ssv2[f"{lm}.0.num_batches_tracked"] == ()
  assert ssv2[f"{lm}.1.weight"] == (512, 768, 1, 1, 1)
  assert ssv2[f"{lm}.2.weight"] == (512, 1, 3, 1, 1)
  assert ssv2[f"{lm}.3.weight"] == (768, 512, 1, 1, 1) and ssv2[f"{lm}.3.bias"] == (768,)
  assert "backbone.transformer.dec.7.ln_3.bias" in ssv2
  l14 = layout.official_shapes(cfg_of(dict(name="uniformerv2", variant="l14_336", frozen=True)))
  assert l14["backbone.positional_embedding"] == (577, 1024)
  assert l14["backbone.transformer.resblocks.23.attn.in_proj_weight"] == (3072, 1024)
  assert "backbone.transformer.balance" not in l14 and len(l14) == 24 * 12 + 7 - 1 + 8 + 56 + 4
  l14s = layout.official_shapes(cfg_of(dict(name="uniformerv2", variant="l14", num_frames=16,
                                            temporal_downsample=True, no_lmhra=False,
                                            n_layers=16)))
  assert l14s["backbone.transformer.resblocks.0.lmhra1.pos_embed.1.weight"] == (682, 1024, 1, 1, 1)


@pytest.mark.parametrize("scan", [False, True])
def test_table_covers_exactly_the_model_state(scan):
  for d in (dict(TINY, scan_layers=scan), dict(name="uniformerv2", scan_layers=scan)):
    model = models.abstract(d)
    got = {p: tuple(v.get_value().shape) for p, v in
           nnx.to_flat_state(nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat)))}
    assert layout.flax_shapes(cfg_of(d)) == got


@pytest.mark.parametrize("scan", [False, True])
def test_round_trips_are_bit_exact(scan):
  d = dict(TINY, scan_layers=scan)
  cfg = cfg_of(d)
  model = models.create(d, rngs=nnx.Rngs(0))
  flat = flat_weights(model)
  back = layout.to_flax(layout.from_flax(flat, cfg), cfg)
  assert back.keys() == flat.keys()
  for p in flat:
    assert back[p].dtype == flat[p].dtype and np.array_equal(back[p], flat[p]), p
  sd = random_official(cfg)
  again = layout.from_flax(layout.to_flax(sd, cfg), cfg)
  assert list(again) == list(sd)
  for k in sd:
    if k.endswith("num_batches_tracked"):  # a counter without Flax counterpart: written as 0
      assert again[k].dtype == np.int64 and again[k].shape == () and int(again[k]) == 0
    else:
      assert np.array_equal(again[k], sd[k]), k


def test_transforms_follow_the_documented_table():
  cfg = cfg_of(TINY)
  sd = random_official(cfg)
  flat = layout.to_flax(sd, cfg)
  b = "backbone.transformer."
  w = sd[b + "resblocks.2.attn.in_proj_weight"]
  for i, n in enumerate("qkv"):
    np.testing.assert_array_equal(flat[("transformer", "resblocks", 2, "attn", f"{n}_proj",
                                        "kernel")], w[64 * i:64 * (i + 1)].T)
  np.testing.assert_array_equal(flat[("conv1", "kernel")],
                                sd["backbone.conv1.weight"].transpose(2, 3, 4, 1, 0))
  np.testing.assert_array_equal(flat[("transformer", "dpe", 1, "kernel")][:, :, :, 0, 5],
                                sd[b + "dpe.1.weight"][5, 0])
  np.testing.assert_array_equal(flat[("transformer", "proj", "fc", "kernel")],
                                sd[b + "proj.2.weight"].T)
  np.testing.assert_array_equal(
      flat[("transformer", "resblocks", 0, "lmhra2", "pos_embed", "layers", 0, "var")],
      sd[b + "resblocks.0.lmhra2.pos_embed.0.running_var"])
  stacked = layout.to_flax(sd, cfg_of(dict(TINY, scan_layers=True)))
  np.testing.assert_array_equal(stacked[("transformer", "resblocks", "mlp", "c_fc", "kernel")][3],
                                sd[b + "resblocks.3.mlp.c_fc.weight"].T)


def test_tampered_state_dicts_raise_naming_every_key():
  cfg = cfg_of(TINY)
  sd = random_official(cfg)
  bad = dict(sd)
  bad["backbone.transformer.dec.0.ln_1.gamma"] = bad.pop("backbone.transformer.dec.0.ln_1.weight")
  bad["backbone.transformer.dpe.2.weight"] = np.zeros((64, 1, 1, 3, 3), np.float32)
  bad["backbone.head.weight"] = np.zeros((3,), np.float32)
  with pytest.raises(ValueError) as e:
    layout.to_flax(bad, cfg)
  msg = str(e.value)
  print(msg)
  for s in ("unexpected backbone.transformer.dec.0.ln_1.gamma", "unexpected backbone.head.weight",
            "missing    backbone.transformer.dec.0.ln_1.weight",
            "backbone.transformer.dpe.2.weight: given (64, 1, 1, 3, 3), expected (64, 1, 3, 3, 3)"):
    assert s in msg
  # An L/14 checkpoint into a B/16 config: every mismatching key is listed, with both shapes.
  l14 = {k: np.zeros(s, np.float32) for k, s in
         layout.official_shapes(cfg_of(dict(name="uniformerv2", variant="l14"))).items()}
  with pytest.raises(ValueError) as e:
    layout.to_flax(l14, cfg_of(dict(name="uniformerv2")))
  msg = str(e.value)
  assert "unexpected backbone.transformer.resblocks.23.ln_2.bias" in msg
  assert ("backbone.positional_embedding: given (257, 1024), expected (197, 768)" in msg)
  assert "144 unexpected, 0 missing, 218 shape mismatch(es)" in msg
  flat = layout.to_flax(sd, cfg)
  flat.pop(("transformer", "balance"))
  with pytest.raises(ValueError, match=r"missing    \('transformer', 'balance'\)"):
    layout.from_flax(flat, cfg)


def test_layout_module_does_not_import_torch():
  code = ("import sys; import convert.uniformerv2_layout; "
          "assert 'torch' not in sys.modules and 'jax' not in sys.modules")
  subprocess.run([sys.executable, "-c", code], check=True)
