"""experiments/benchmark.py: rows of the real train/eval steps on CPU, and the AOT-plan helpers."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
  """experiments/benchmark.py as a module (once per process: it defines absl flags)."""
  if "vidjax_benchmark" not in sys.modules:
    spec = importlib.util.spec_from_file_location("vidjax_benchmark",
                                                  ROOT / "experiments" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["vidjax_benchmark"] = module
    spec.loader.exec_module(module)
  return sys.modules["vidjax_benchmark"]


def test_cli_rows_on_cpu_compile_the_step_once_and_count_model_flops(bench):
  # One process: the tiny UniFormerV2 train step (4 timed steps after 1 warm-up) and the tiny
  # Video-FocalNet eval step, per-device batch 2 on one CPU device.
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_backend_optimization_level=0 "
             "--xla_llvm_disable_expensive_passes=true")
  out = subprocess.run(
      [sys.executable, str(ROOT / "experiments" / "benchmark.py"), "--sweep",
       "--sweep_configs=uniformerv2/tiny_test.py@train,video_focalnet/tiny_test.py@infer",
       "--batch=2", "--steps=4", "--warmup=1"],
      capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  lines = out.stdout.strip().splitlines()
  rows = json.loads(lines[-1])
  assert [(r["config"], r["mode"]) for r in rows] == [
      ("uniformerv2/tiny_test.py", "train"), ("video_focalnet/tiny_test.py", "infer")]
  assert any(line.startswith("uniformerv2/tiny_test.py") for line in lines[:-1])  # the table
  # The tiny configs' forward MACs per clip, from XLA's cost analysis (summary.py).
  gmacs = {"uniformerv2": 0.010369, "video_focalnet": 0.040024}
  for r in rows:
    assert r["device_kind"] == "cpu" and r["device_count"] == 1 and r["mfu"] == "n/a"
    assert r["batch_per_device"] == 2 and r["global_batch"] == 2 and r["steps"] == 4
    assert r["compiles"] == 1          # the step compiled once for warm-up + 4 steps
    assert 0 < r["compile_s"] and 0 < r["step_s"] < r["compile_s"] + 60
    assert abs(r["gmacs_per_clip"] / gmacs[r["model"]] - 1) < 1e-3, r["gmacs_per_clip"]
    assert r["clips_per_s"] == pytest.approx(2 / r["step_s"], rel=1e-3)
    factor = 3 if r["mode"] == "train" else 1
    tflops = 2 * r["gmacs_per_clip"] * 1e9 * factor * 2 / r["step_s"] / 1e12
    assert r["model_tflops_per_s_per_device"] == pytest.approx(tflops, rel=2e-2, abs=1e-4)
    assert r["dtype"] == "float32" and r["remat_policy"] == "none"
  assert rows[0]["attention_impl"] == "xla" and rows[1]["attention_impl"] == "n/a"


def test_vs_torch_rows_time_the_same_per_frame_computation(bench):
  """--vs_torch: jitted forward vs PyTorch eager (open_clip ViT / timm FocalNet per frame)."""
  pytest.importorskip("open_clip")
  pytest.importorskip("timm")
  rows = []
  for config in ("uniformerv2/tiny_test.py", "video_focalnet/tiny_test.py"):
    out = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "benchmark.py"), "--vs_torch",
         f"--config=configs/{config}", "--steps=2", "--warmup=1"],
        capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"),
        timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-2].startswith(f"configs/{config}"[-34:])  # the table row
    rows += json.loads(lines[-1])
  for r in rows:
    assert r["mode"] == "infer vs torch" and r["dtype"] == "float32" and r["batch_per_device"] == 1
    assert r["depthwise_impl"] == "shift"  # 'auto' on CPU
    assert r["threads"] == len(os.sched_getaffinity(0))
    assert r["vidjax_s"] > 0 and r["vidjax_per_frame_s"] > 0 and r["torch_per_frame_s"] > 0
    assert r["ratio_vs_torch"] == pytest.approx(
        r["vidjax_per_frame_s"] / r["torch_per_frame_s"], rel=0.02)
    assert "official_s" not in r  # only with --official_file


def test_per_frame_twins_compute_what_the_torch_references_compute(bench):
  """The per-frame configs have the PyTorch twin's parameter count (same architecture)."""
  import jax
  from flax import nnx
  from vidjax import models
  pytest.importorskip("open_clip")
  pytest.importorskip("timm")
  for config in ("uniformerv2/tiny_test.py", "video_focalnet/tiny_test.py"):
    mcfg = bench.load_config(config).model.to_dict()
    full = models.create(mcfg, rngs=nnx.Rngs(0))
    twin, ref = bench._per_frame_twin(mcfg["name"], full.cfg)
    ours = models.create(dict(mcfg, **twin), rngs=nnx.Rngs(0))
    n_ours = sum(x.size for x in jax.tree.leaves(nnx.state(ours, nnx.Param)))
    n_ref = sum(p.numel() for p in ref.parameters())
    if mcfg["name"] == "uniformerv2":  # CLIP's output projection C x 512 vs our C x classes head
      n_ref += -ref.proj.numel() + (full.cfg.width + 1) * full.cfg.num_classes
    print(config, n_ours, n_ref)
    assert n_ours == n_ref


def test_largest_batch_fits_the_limit_and_the_next_power_of_two_does_not(bench):
  # --sweep's search, on CPU with a made-up device limit (CPU reports no bytes_limit): the chosen
  # batch's compiled peak fits 90 % of it and twice that batch's does not.
  config = lambda: bench.load_config("uniformerv2/tiny_test.py")
  p1, p2 = bench.compiled_peak(config(), "train", 1), bench.compiled_peak(config(), "train", 2)
  assert p2 > p1 > 0
  limit = int((p1 + 5.5 * (p2 - p1)) / 0.9)  # room for about 6 clips -> batch 4
  b = bench.largest_batch("tiny", config(), "train", max_batch=64, limit=limit)
  print(f"peak {p1} B at 1, {p2} B at 2; limit {limit} -> batch {b}")
  assert b == 4
  assert bench.compiled_peak(config(), "train", b) <= 0.9 * limit
  assert bench.compiled_peak(config(), "train", 2 * b) > 0.9 * limit
  assert bench.largest_batch("tiny", config(), "train", max_batch=2, limit=limit) == 2
  assert bench.largest_batch("tiny", config(), "train", max_batch=64) == 1  # CPU: no limit


def test_peak_table_topology_names_and_mesh_flag(bench):
  assert bench.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
  assert bench.peak_tflops("NVIDIA H200") == 989.0
  assert bench.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
  assert bench.peak_tflops("TPU v5 lite") == 197.0   # libtpu's name for v5e
  assert bench.peak_tflops("TPU v5") == 459.0        # ... and for v5p
  assert bench.peak_tflops("TPU v4") == 275.0
  assert bench.peak_tflops("cpu") is None
  assert bench.topology_name("v5e-256") == "v5e:16x16"
  assert bench.topology_name("v5p-128") == "v5p:4x4x4"   # 128 TensorCores = 64 chips
  assert bench.topology_name("v4-32") == "v4:2x2x4"     # 16 chips
  assert bench.topology_name("v5e:4x4") == "v5e:4x4"
  with pytest.raises(ValueError, match="v5e-256"):
    bench.topology_name("v5e256")
  assert bench.parse_mesh("data=16,fsdp=16") == (("data", 16), ("fsdp", 16), ("tensor", 1))
  with pytest.raises(ValueError, match="data=N"):
    bench.parse_mesh("dp=2")


def test_collectives_counts_and_bytes_from_optimised_hlo(bench):
  hlo = "\n".join([
      "  %all-gather.6 = bf16[1024,512]{1,0:T(8,128)(2,1)S(1)} all-gather(%param), channel_id=2,"
      " replica_groups=mesh['axis_0'=4] {'axis_0'}, dimensions={0}",
      "  %ags = (f32[256,64]{1,0}, f32[1024,64]{1,0}) all-gather-start(f32[256,64]{1,0} %p),"
      " dimensions={0}",
      "  %agd = f32[1024,64]{1,0} all-gather-done(%ags)",
      "  %rs = f32[16,8]{1,0} reduce-scatter(f32[64,8]{1,0} %g), dimensions={0}",
      "  ROOT %all-reduce = bf16[]{:T(256)} all-reduce(%fusion), to_apply=%region_0.0.clone",
      "  %fusion = f32[8]{0} fusion(%all-reduce.2), kind=kLoop, calls=%fused",
  ])
  c = bench.collectives(hlo)
  assert c["all-gather"] == {"count": 2, "bytes": 1024 * 512 * 2 + 1024 * 64 * 4}
  assert c["reduce-scatter"] == {"count": 1, "bytes": 16 * 8 * 4}
  assert c["all-reduce"] == {"count": 1, "bytes": 2}
  assert c["all-to-all"]["count"] == 0 and c["collective-permute"]["count"] == 0
