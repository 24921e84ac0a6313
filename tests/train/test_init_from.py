"""``config.init_from``: a converted checkpoint (``vidjax.models.save`` = ``python -m convert``
output) mapped strictly onto a new model, with the head kept, re-initialised or row-selected."""

import json

import numpy as np
import pytest
from flax import nnx

from vidjax import models
from vidjax.train import checkpoint as ckpt_lib
from vidjax.train import loop, mesh as mesh_lib

HEAD = ("transformer", "proj", "fc", "kernel")


@pytest.fixture(scope="module")
def source(load_config, tmp_path_factory):
  """A converted-style checkpoint of the tiny UniFormerV2 with a 12-class head."""
  c = load_config("uniformerv2/tiny_test.py")
  c.model.num_classes = 12
  model = models.create(c.model, rngs=nnx.Rngs(params=5, dropout=5))
  path = str(tmp_path_factory.mktemp("converted") / "ckpt")
  models.save(path, model, c.model, {"labels": [f"c{i}" for i in range(12)]})
  return path, models.checkpoint.flat_weights(model)


def _initialised(load_config, **init):
  c = load_config("uniformerv2/tiny_test.py")
  c.init_from.update(init)
  c = loop.resolve_config(c)
  c.mesh = (("data", 1), ("fsdp", 1), ("tensor", 1))
  import jax
  setup, _ = loop.build(c, 10, mesh_lib.make_mesh(c.mesh, jax.devices()[:1]))
  state, report = loop.init_state(setup, seed=0)
  model = setup.model.merge(False, state.params, state.frozen, state.batch_stats)
  return models.checkpoint.flat_weights(model), report


def test_keep_copies_every_weight_and_the_first_rows_of_a_larger_head(load_config, source):
  path, src = source
  got, report = _initialised(load_config, checkpoint=path, head="keep")
  for k, v in got.items():
    expect = src[k][..., :10] if k[:3] == HEAD[:3] else src[k]  # kernel [C, K], bias [K]
    np.testing.assert_array_equal(v, expect, err_msg=str(k))
  assert len(report["copied"]) == len(got) and report["head"]


def test_reinit_keeps_the_fresh_head_and_label_map_selects_rows(load_config, source, tmp_path):
  path, src = source
  fresh, _ = _initialised(load_config)
  got, report = _initialised(load_config, checkpoint=path, head="reinit")
  np.testing.assert_array_equal(got[HEAD], fresh[HEAD])
  assert not np.array_equal(got[HEAD][:, :10], src[HEAD][:, :10])
  np.testing.assert_array_equal(got[("conv1", "kernel")], src[("conv1", "kernel")])
  assert report["reinitialised"] == ["transformer.proj.fc.bias", "transformer.proj.fc.kernel"]
  rows = [11, 3, 0, 7, 1, 2, 9, 4, 5, 6]
  label_map = tmp_path / "label_mixto10.json"
  label_map.write_text(json.dumps(rows))
  got, _ = _initialised(load_config, checkpoint=path, head="label_map", label_map=str(label_map))
  np.testing.assert_array_equal(got[HEAD], src[HEAD][:, rows])
  bias = ("transformer", "proj", "fc", "bias")
  np.testing.assert_array_equal(got[bias], src[bias][rows])


def test_a_checkpoint_of_another_architecture_is_refused_naming_keys_and_shapes(load_config,
                                                                                  tmp_path):
  c = load_config("uniformerv2/tiny_test.py")
  c.model.width = 32
  path = str(tmp_path / "narrow")
  models.save(path, models.create(c.model, rngs=nnx.Rngs(0)), c.model)
  with pytest.raises(ValueError, match=r"conv1\.kernel: .* has shape \(3, 8, 8, 3, 32\), the "
                                       r"model \(3, 8, 8, 3, 64\)"):
    _initialised(load_config, checkpoint=path)
  with pytest.raises(ValueError, match="label_map=FILE"):
    _initialised(load_config, checkpoint=path, head="label_map")


def test_read_weights_reports_missing_directory():
  with pytest.raises(FileNotFoundError, match="no such checkpoint directory"):
    ckpt_lib.read_weights("/nonexistent/ckpt")
