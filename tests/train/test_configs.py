"""Every experiment config is complete: it loads through ``ml_collections.config_flags`` by path,
its model has the official parameter count and output shape (abstractly), and its ``data``
section builds a pipeline that yields a batch of the model's input shape."""

import importlib.util
import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vidjax import models
from vidjax.data import pipeline
from vidjax.train import loop

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = sorted(str(p.relative_to(ROOT / "configs")) for p in (ROOT / "configs").glob("*/*.py"))
RELEASED = [c for c in CONFIGS if not c.startswith("demo/") and "tiny_test" not in c]
SECTIONS = ("model", "data", "optim", "schedule", "init_from", "mesh", "sharding_rules", "val")

# Parameters of the official models at 400 classes (measured on the official PyTorch code) and the
# width of the head's input: other class counts add (width + 1) per class.
PARAMS_AT_400 = {
    ("uniformerv2", "b16", False, False): (114_552_208, 768),
    ("uniformerv2", "l14", False, False): (354_099_600, 1024),
    ("uniformerv2", "l14_336", False, False): (354_427_280, 1024),
    ("uniformerv2", "l14_336", False, True): (354_426_256, 1024),   # frozen: no `balance`
    ("uniformerv2", "b16", True, False): (162_992_814 - 769 * (174 - 400), 768),  # Sth design
    ("uniformerv2", "l14", True, False): (573_949_966 - 1025 * (174 - 400), 1024),
    ("video_focalnet", "tiny", False, False): (49_553_272, 768),
    ("video_focalnet", "small", False, False): (88_735_168, 768),
    ("video_focalnet", "base", False, False): (157_389_216, 1024),
}


def test_there_is_one_config_per_released_run():
  u = [c for c in RELEASED if c.startswith("uniformerv2/")]
  v = [c for c in RELEASED if c.startswith("video_focalnet/")]
  assert len(u) == 49 and len(v) == 7, (len(u), len(v))


@pytest.mark.parametrize("rel", CONFIGS)
def test_config_has_every_section_and_consistent_shapes(rel, load_config):
  c = load_config(rel, "/data/prepared")
  assert all(k in c for k in SECTIONS), [k for k in SECTIONS if k not in c]
  loop.resolve_config(c)  # model/data frames and classes agree
  assert c.data.batch_size % c.data.train.num_samples == 0
  if rel in RELEASED:
    assert c.data.data_dir == "/data/prepared" and c.init_from.expected


def _unique_models():
  out = {}
  for rel in RELEASED:
    spec = importlib.util.spec_from_file_location("c", ROOT / "configs" / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    m = mod.get_config().model.to_dict()
    out.setdefault(json.dumps(m, sort_keys=True, default=list), rel)
  return sorted(out.values())


@pytest.mark.parametrize("rel", _unique_models())
def test_released_model_has_the_official_parameter_count_and_logits_shape(rel, load_config):
  m = load_config(rel).model
  cfg = models.model_config(m)
  key = (m.name, m.variant, bool(getattr(cfg, "temporal_downsample", False)),
         bool(getattr(cfg, "frozen", False)))
  base, width = PARAMS_AT_400[key]
  model = models.abstract(dict(m.to_dict(), scan_layers=True))
  n = sum(int(np.prod(v.get_value().shape)) for _, v in
          nnx.to_flat_state(nnx.state(model, nnx.Param)))
  assert n == base + (width + 1) * (m.num_classes - 400), (rel, n)
  model.eval()
  graphdef, state = nnx.split(model)
  x = jax.ShapeDtypeStruct((1, cfg.num_frames, cfg.image_size, cfg.image_size, 3), jnp.float32)
  out = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state, x)
  assert out.shape == (1, m.num_classes)


@pytest.mark.parametrize("rel", CONFIGS)
def test_config_data_section_builds_a_pipeline_of_the_model_input(rel, load_config, synth):
  c = load_config(rel, synth)
  c.data.update(dict(source="files", format="list", train_annotations=f"{synth}/train.txt",
                     eval_annotations=f"{synth}/val.txt", video_dir=synth, workers=0,
                     num_classes=max(c.data.num_classes, 8)))
  c.data.batch_size = c.data.train.num_samples
  it = iter(pipeline.train_dataset(c.data))
  batch = next(it)
  pipeline.close(it)
  size = c.model.image_size or models.model_config(c.model).image_size
  assert batch["clip"].shape == (c.data.batch_size, c.model.num_frames, size, size, 3)
  assert batch["clip"].dtype == np.uint8


def test_config_flags_load_every_config_by_path_with_overrides():
  code = ("import sys; from absl import flags; from ml_collections import config_flags; "
          "c = config_flags.DEFINE_config_file('config'); flags.FLAGS(sys.argv); "
          "print(c.value.model.num_classes, c.value.data.data_dir)")
  out = subprocess.run([sys.executable, "-c", code,
                        f"--config={ROOT}/configs/uniformerv2/k600_k710_l14_8x224.py:/d",
                        "--config.model.num_classes=37", "--config.data.num_classes=37"],
                       capture_output=True, text=True, check=True)
  assert out.stdout.split() == ["37", "/d"]
