"""Every entry point takes ``--config FILE[:arg]`` with ``--config.a.b=value`` overrides, and a bad
config file, field or value is one ``error:`` line (flag, field, nearest valid name, file) with
exit code 2 (``vidjax.cli``).

The argparse entry points (``python -m convert``, ``prepare_data.py``, ``benchmark_data.py``) run
in-process; the absl ones (``train.py``, ``evaluate.py``, ``summary.py``, ``infer.py``) define
global flags, so they run as subprocesses, stopped at flag parsing (no jax work).
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from convert import clip, common, io
from convert.__main__ import main as convert_main
from vidjax import cli, models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "configs", "uniformerv2", "tiny_test.py")
TYPO = "--config.model.num_clases=37"
TYPO_LINE = f"error: {TYPO}: {TINY} has no field model.num_clases (nearest: model.num_classes)"


def _experiment(name: str):
  spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "experiments",
                                                                   f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _error_line(capsys) -> str:
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1, err
  return err[0]


def test_load_config_applies_overrides_and_names_the_nearest_field():
  c = cli.load_config(TINY + ":/data/x", ["--config.model.num_classes=37",
                                           "--config.data.train.flip_prob", "0.25"])
  assert (c.model.num_classes, c.data.data_dir, c.data.train.flip_prob) == (37, "/data/x", 0.25)
  with pytest.raises(cli.ConfigError) as e:
    cli.load_config(TINY, [TYPO])
  assert f"error: {e.value}" == TYPO_LINE
  with pytest.raises(cli.ConfigError, match=r"^--config.modle.width=3: .* no field modle "
                     r"\(nearest: model\)$"):
    cli.load_config(TINY, ["--config.modle.width=3"])
  with pytest.raises(cli.ConfigError, match=r"^flag --config.model.num_classes=abc: invalid "
                     r"literal for int\(\).*\(config .*tiny_test.py\)$"):
    cli.load_config(TINY, ["--config.model.num_classes=abc"])
  with pytest.raises(cli.ConfigError, match=r"^--config .*tiny_tset.py: no such config file "
                     r"\(nearest: .*configs/uniformerv2/tiny_test.py\)$"):
    cli.load_config(TINY.replace("tiny_test", "tiny_tset"))


def test_absl_parser_is_one_line_exit_2(capsys):
  fv = flags.FlagValues()
  holder = config_flags.DEFINE_config_file("config", None, "c", flag_values=fv,
                                           sys_argv=["p", "--config", TINY, TYPO])
  with pytest.raises(SystemExit) as e:
    cli.parse_flags(["p", "--config", TINY, TYPO], fv)
  assert e.value.code == 2 and _error_line(capsys) == TYPO_LINE
  del holder


def test_argparse_entry_points_bad_field_is_one_line_exit_2(tmp_path, capsys):
  out = str(tmp_path / "out")
  rc = convert_main(["clip", "--src", str(tmp_path / "x.safetensors"), "--config", TINY, TYPO,
                     "--out", out])
  assert rc == 2 and _error_line(capsys) == TYPO_LINE and not os.path.exists(out)
  for name, argv in (("prepare_data", ["--config", TINY, TYPO, "--video_dir", str(tmp_path),
                                       "--out", out]),
                     ("benchmark_data", ["--config", TINY, TYPO, "--dir", out])):
    with pytest.raises(SystemExit) as e:
      _experiment(name).main(argv)
    line = _error_line(capsys)
    assert e.value.code == 2 and line.startswith("error: ") and line.endswith(
        TYPO_LINE[len("error: "):]), (name, line)
    assert not os.path.exists(out)


@pytest.mark.parametrize("script,argv,expected", [
    ("train.py", ["--config", TINY, TYPO, "--workdir", "/nonexistent/w"], TYPO_LINE),
    ("evaluate.py", ["--config", TINY.replace("tiny_test", "tiny_tset"), "--checkpoint", "c"],
     f"error: --config {TINY.replace('tiny_test', 'tiny_tset')}: no such config file "
     f"(nearest: {TINY})"),
    ("summary.py", ["--config", TINY, "--config.model.variant=b17"],
     f"error: model.variant='b17': expected one of ['b16', 'l14', 'l14_336'] (config {TINY})"),
    ("infer.py", ["--chekpoint", "c", "--video", "v.mp4"],
     "error: Unknown command line flag 'chekpoint'. Did you mean: checkpoint ?"),
])
def test_absl_entry_points_bad_argument_is_one_line_exit_2(script, argv, expected):
  r = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", script), *argv],
                     capture_output=True, text=True, timeout=120, cwd=ROOT)
  assert (r.returncode, r.stderr.strip()) == (2, expected), r.stderr[-2000:]


def _clip_visual(tmp_path) -> tuple[str, dict[str, np.ndarray]]:
  """A random extracted CLIP visual dict (``clip-visual`` layout) of the tiny config's ViT."""
  config = common.load_config_file(TINY)
  _, cfg = common.architecture(config.model)
  official = common.layout_module("uniformerv2").official_shapes(cfg)
  rng = np.random.default_rng(0)
  sd = {}
  for k in clip.visual_keys(cfg.layers):
    shape = tuple(official["backbone." + k])
    shape = shape[:2] + shape[3:] if k == "conv1.weight" else shape   # 2-D CLIP patch kernel
    sd[k] = rng.normal(size=shape).astype(np.float32)
  src = str(tmp_path / "clip_visual.safetensors")
  io.write_safetensors(sd, src)
  return src, sd


def test_convert_with_num_classes_override_writes_a_37_class_head(tmp_path, capsys):
  src, sd = _clip_visual(tmp_path)
  out = str(tmp_path / "ckpt")
  assert convert_main(["clip", "--src", src, "--config", TINY, "--config.model.num_classes=37",
                       "--out", out]) == 0
  capsys.readouterr()
  model, info = models.load(out)
  assert info["model"]["num_classes"] == 37
  fc = model.transformer.proj.fc
  assert (fc.kernel.shape, fc.bias.shape) == ((64, 37), (37,))
  # The backbone is the source's (ln_pre copied to the digit), the head a fresh draw.
  np.testing.assert_array_equal(np.asarray(model.ln_pre.scale[...]), sd["ln_pre.weight"])
  assert float(np.abs(np.asarray(fc.kernel[...])).max()) > 0
