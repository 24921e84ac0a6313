r"""Per-chip performance of the real train / eval steps: time, clips/s, TFLOP/s, MFU, memory, compile.

    python experiments/benchmark.py --config configs/uniformerv2/k400_b16_8x224.py --batch 8
    python experiments/benchmark.py --config configs/video_focalnet/k400_base.py --mode infer \
        --dtype bfloat16 --steps 20
    python experiments/benchmark.py --sweep --dtype bfloat16        # the standard set (accelerator)
    python experiments/benchmark.py --config configs/uniformerv2/ssv2_l14_16x224.py \
        --aot_topology v5e-256 --batch 4 --mesh data=16,fsdp=16   # TPU pod plan, on this CPU
    python experiments/benchmark.py --config configs/video_focalnet/k400_base.py --vs_torch \
        [--official_file ~/Video-FocalNets/classification/videofocalnet.py]  # CPU vs PyTorch

One row per configuration: device kind and count, dtypes, per-device batch, remat / attention /
scan / depthwise settings, compile time (trace + lower + XLA compile of the step), step time
(median of ``--steps`` timed steps after ``--warmup``, each synchronised with
``block_until_ready``), clips/s, model TFLOP/s per device and MFU against the device's dense bf16
peak (:data:`PEAK_TFLOPS`; "n/a" on CPU), peak device memory (``memory_stats`` where the backend
reports it) and ``compiles``: how many XLA compilations the step needed over warm-up + timed steps
(1: no recompilation). Model FLOPs = 2 x forward MACs x 3 for training (x 1 for inference); the
MACs are XLA's cost analysis of the batch-1 eval forward (``summary.py``, the papers' "GFLOPs");
remat recomputation is not counted. The train step is ``vidjax.train.loop.build``'s (the one
``train.py`` runs: AdamW / SGD of the config, donated state, explicit shardings), fed synthetic
uint8 clips already on device, so the input pipeline is not measured here
(``benchmark_data.py`` is).

``--sweep``: UniFormerV2 B/16 8x224, B/16 16x224 (Sth-Sth design), L/14 8x224, Video-FocalNet
T/S/B 8x224, train and infer, each at the largest per-device batch that fits: batch 1 and 2 are
compiled (not run) and the compiled peak memory extrapolated linearly to 90 % of the device's
``bytes_limit`` (a power of two at most ``--max_batch``); without a reported limit (CPU) the
batch is ``--batch`` or 1.

``--aot_topology`` (``v5e-256``, ``v5p-128``, ``v4-32``, ``v6e-64`` ... or a libtpu topology
name such as ``v5e:16x16``) lowers and compiles the train step for that TPU slice on this machine
(``jax[tpu]`` installed: ``pip install -e .[tpu]``; runs with ``JAX_PLATFORMS=cpu``) with the
config's mesh and sharding rules (``--mesh`` overrides ``config.mesh``), and reports per chip:
parameter + optimizer-state bytes, the compiled peak (``memory_analysis``), FLOPs
(``cost_analysis``) and the collectives of the optimised HLO (count and result bytes per kind).
``--aot_topology cpu`` compiles the same program for the simulated CPU devices instead
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``), the fallback when libtpu cannot.

``--vs_torch`` (CPU, fp32, batch ``--batch`` or 1, the process's cores as threads on both
sides) times the jitted forward of the config's network next to PyTorch eager: the network's
per-frame part (UniFormerV2 without local MHRA and global blocks = CLIP ViT per frame, open_clip;
Video-FocalNet ``spatial_only`` = image FocalNet per frame, timm) against its PyTorch twin
(``ratio_vs_torch``, same computation), and with ``--official_file PATH`` (the released
``uniformerv2_model.py`` or ``videofocalnet.py``, imported from where the user keeps it) the
whole network against the released model at the same architecture (``ratio_vs_official``).

The table goes to stdout; the last line is a JSON list of the rows.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import json
import math
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if any(a.startswith("--aot_topology") for a in sys.argv):
  # Compile-only TPU devices on a CPU host (set before jax reads its config): the default backend
  # stays CPU, and libtpu may load although another process here holds its lock file.
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags, logging
from flax import nnx

from vidjax import models
from vidjax.models import layers
from vidjax.train import loop, mesh as mesh_lib, step as step_lib

ROOT = Path(__file__).resolve().parents[1]


def _load_summary():
  if "summary" in sys.modules:  # already imported (tests): its flags exist once per process
    return sys.modules["summary"]
  spec = importlib.util.spec_from_file_location("summary", Path(__file__).with_name("summary.py"))
  module = importlib.util.module_from_spec(spec)
  sys.modules["summary"] = module
  spec.loader.exec_module(module)
  return module


# summary.py holds the MAC counter (`forward_cost`) and defines the --config flag on import: the
# same flag serves here (--config FILE, --config.a.b=value overrides).
summary = _load_summary()
_CONFIG = summary._CONFIG
_MODE = flags.DEFINE_enum("mode", "train", ["train", "infer"], "Step to measure.")
_BATCH = flags.DEFINE_integer("batch", None, "Clips per device (default: the config's micro-batch "
                              "per device; --sweep: the largest that fits).")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps first (the first one compiles).")
_SWEEP = flags.DEFINE_bool("sweep", False, "Run the standard set (SWEEP), train and infer.")
_SWEEP_CONFIGS = flags.DEFINE_list("sweep_configs", None, "--sweep over these instead of SWEEP: "
                                   "configs/ paths, each optionally @train or @infer (else both).")
_DTYPE = flags.DEFINE_string("dtype", None, "Override model.dtype (compute), e.g. bfloat16.")
_MAX_BATCH = flags.DEFINE_integer("max_batch", 64, "--sweep: largest per-device batch tried.")
_MESH = flags.DEFINE_string("mesh", None, "Override config.mesh, e.g. data=16,fsdp=16,tensor=1.")
_VS_TORCH = flags.DEFINE_bool("vs_torch", False, "CPU forward (fp32, --batch, default 1) of the "
                               "jitted network vs PyTorch eager on the same threads (vs_torch).")
_OFFICIAL = flags.DEFINE_string("official_file", None, "--vs_torch: also time the official model "
                                "file (uniformerv2_model.py / videofocalnet.py of the released "
                                "repositories; imported, i.e. executed, as Python) at the "
                                "config's architecture.")
_AOT = flags.DEFINE_string("aot_topology", None, "Compile (not run) the train step for a TPU "
                           "slice (v5e-256, v5p-128, v4-32, v5e:16x16, ...) or 'cpu'.")

# Dense bf16 peak per chip (TFLOP/s): NVIDIA H100/H200 SXM, A100; Cloud TPU v4, v5e, v5p, v6e.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "TPU v4": 275.0,
               "TPU v5 lite": 197.0, "TPU v5e": 197.0, "TPU v5p": 459.0, "TPU v5": 459.0,
               "TPU v6 lite": 918.0, "TPU v6e": 918.0}
# HBM per chip by libtpu device kind: v4 32 GiB, v5e ("v5 lite") 16, v5p ("v5") 95, v6e 32.
HBM_BYTES = {"TPU v4": 32 * 2 ** 30, "TPU v5 lite": 16 * 2 ** 30, "TPU v5": 95 * 2 ** 30,
             "TPU v6 lite": 32 * 2 ** 30}
SWEEP = ("uniformerv2/k400_b16_8x224.py", "uniformerv2/ssv2_b16_16x224.py",
         "uniformerv2/k400_k710_l14_8x224.py", "video_focalnet/k400_tiny.py",
         "video_focalnet/k400_small.py", "video_focalnet/k400_base.py")
# Slice names as Cloud TPU sells them -> libtpu topology (by chips). v5e/v6e: the number is chips
# (2-D torus); v4/v5p: TensorCores, 2 per chip (3-D torus).
_TOPOLOGY_2D = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16",
                256: "16x16"}
_TOPOLOGY_3D = {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8",
                256: "4x8x8", 512: "8x8x8"}
_COLLECTIVES = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")
_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4,
                "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}
_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")


def load_config(path: str) -> ml_collections.ConfigDict:
  """``configs/<path>`` (or any file) -> ConfigDict."""
  p = Path(path) if Path(path).exists() else ROOT / "configs" / path
  spec = importlib.util.spec_from_file_location(f"cfg_{p.stem}", p)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def peak_tflops(device_kind: str) -> float | None:
  """Dense bf16 peak of one chip, or None (CPU and unknown devices)."""
  for name, peak in PEAK_TFLOPS.items():  # longest names first where they share a prefix
    if name.lower() in device_kind.lower():
      return peak
  return None


def topology_name(slice_name: str) -> str:
  """``v5e-256`` -> ``v5e:16x16``, ``v5p-128`` -> ``v5p:4x4x4``; libtpu names pass through."""
  if ":" in slice_name:
    return slice_name
  m = re.fullmatch(r"(v\d+[a-z]*)-(\d+)", slice_name)
  if not m:
    raise ValueError(f"--aot_topology={slice_name!r}: expected e.g. v5e-256, v5p-128, v4-32 or "
                     "a libtpu topology such as v5e:16x16")
  gen, n = m.group(1), int(m.group(2))
  two_d = gen in ("v5e", "v6e")
  table, chips = (_TOPOLOGY_2D, n) if two_d else (_TOPOLOGY_3D, n // 2)
  if chips not in table:
    raise ValueError(f"--aot_topology={slice_name!r}: {chips} chips, expected one of "
                     f"{sorted(table)}")
  return f"{gen}:{table[chips]}"


def parse_mesh(text: str) -> tuple[tuple[str, int], ...]:
  """``data=16,fsdp=16`` -> ``(("data", 16), ("fsdp", 16), ("tensor", 1))``."""
  sizes = dict(data=1, fsdp=1, tensor=1)
  for item in text.split(","):
    name, _, size = item.partition("=")
    if name not in sizes or not size.lstrip("-").isdigit():
      raise ValueError(f"--mesh={text!r}: expected comma-separated data=N,fsdp=N,tensor=N")
    sizes[name] = int(size)
  return tuple(sizes.items())


class CompileCounter(contextlib.AbstractContextManager):
  """Counts XLA compilations (and sums trace + lower + compile seconds) while active."""

  def __init__(self):
    self.count, self.seconds, self.active = 0, 0.0, False
    jax.monitoring.register_event_duration_secs_listener(self._on_event)

  def _on_event(self, event: str, duration: float, **_) -> None:
    if not self.active or event not in _COMPILE_EVENTS:
      return
    self.seconds += duration
    self.count += event == _COMPILE_EVENTS[-1]

  def __enter__(self):
    self.active = True
    return self

  def __exit__(self, *exc):
    self.active = False
    return False


_COUNTER: CompileCounter | None = None


def _counter() -> CompileCounter:
  global _COUNTER
  if _COUNTER is None:  # one listener per process (jax has no unregister)
    _COUNTER = CompileCounter()
  return _COUNTER


def prepare(config: ml_collections.ConfigDict, batch_per_device: int | None,
            mesh: jax.sharding.Mesh | None = None):
  """(resolved config, mesh, Setup, abstract state, per-device batch) for ``config``."""
  config = loop.resolve_config(config)
  if _DTYPE.present and _DTYPE.value:
    config.model.dtype = _DTYPE.value
  if _MESH.present and _MESH.value:
    config.mesh = parse_mesh(_MESH.value)
  mesh = mesh_lib.make_mesh(config.mesh) if mesh is None else mesh
  n = mesh_lib.batch_devices(mesh)
  if batch_per_device is None:
    micro = int(config.data.batch_size) // int(config.optim.grad_accum_steps)
    batch_per_device = max(micro // n, 1)
  config.data.batch_size = batch_per_device * n
  config.optim.grad_accum_steps = 1
  setup, abstract_state = loop.build(config, steps_per_epoch=1000, mesh=mesh)
  return config, mesh, setup, abstract_state, batch_per_device


def batch_spec(config, mode: str, sharding) -> dict[str, jax.ShapeDtypeStruct]:
  """Abstract batch of the step: uint8 clips (one view per video for ``infer``), labels."""
  m = models.model_config(config.model)
  b = int(config.data.batch_size)
  clip = (b, m.num_frames, m.image_size, m.image_size, 3)
  if mode == "infer":
    clip = (b, 1) + clip[1:]
  return {"clip": jax.ShapeDtypeStruct(clip, jnp.uint8, sharding=sharding),
          "label": jax.ShapeDtypeStruct((b,), jnp.int32, sharding=sharding)}


def _synthetic(spec: dict, seed: int = 0) -> dict[str, jax.Array]:
  rng = np.random.default_rng(seed)
  out = {}
  for k, s in spec.items():
    hi = 256 if s.dtype == jnp.uint8 else 2
    x = rng.integers(0, hi, s.shape).astype(s.dtype)
    out[k] = mesh_lib.put_global(x, s.sharding)
  return out


def settings(config) -> dict[str, Any]:
  """The performance switches of ``config.model`` (resolved, as the step uses them)."""
  m = models.model_config(config.model)
  get = lambda k: getattr(m, k, "n/a")
  return dict(dtype=str(get("dtype")), param_dtype=str(get("param_dtype")),
              remat_policy=get("remat_policy"), attention_impl=get("attention_impl"),
              scan_layers=get("scan_layers"),
              depthwise_impl=layers.depthwise_impl(get("depthwise_impl")))  # 'auto' decided


def model_flops(config, mode: str, clips: int) -> tuple[float, float]:
  """(forward GMACs per clip, model FLOPs of one step for ``clips`` clips)."""
  # Unrolled: XLA's cost analysis counts a while-loop body (scan_layers) once, not per layer.
  gmacs, _ = summary.forward_cost(dict(config.model.to_dict(), scan_layers=False))
  return gmacs, 2 * gmacs * 1e9 * (3 if mode == "train" else 1) * clips


def _memory_peak(compiled) -> int | None:
  """Bytes one device needs for ``compiled``: XLA's ``peak_memory_in_bytes`` (libtpu's fit check
  uses it: a v5e plan whose temporaries alone sum to more than HBM compiles when this fits),
  else arguments + outputs - donated (aliased) + temporaries."""
  ma = compiled.memory_analysis()
  if ma is None:
    return None
  peak = getattr(ma, "peak_memory_in_bytes", 0) or 0
  if peak:
    return int(peak)
  return int(ma.argument_size_in_bytes + ma.output_size_in_bytes - ma.alias_size_in_bytes
             + ma.temp_size_in_bytes)


def measure(rel: str, config, mode: str, batch_per_device: int | None, steps: int,
            warmup: int) -> dict[str, Any]:
  """Runs ``warmup`` + ``steps`` steps of ``mode`` on the local devices; one table row."""
  config, mesh, setup, abstract_state, b = prepare(config, batch_per_device)
  state, _ = loop.init_state(setup, seed=0)
  batch = _synthetic(batch_spec(config, mode, setup.batch_sharding))
  if mode == "train":
    call = lambda s: setup.train_step(s, batch)
  else:
    weights = (state.params, state.frozen, state.batch_stats)
    call = lambda s: (s, setup.eval_step(weights, batch))
  counter = _counter()
  counter.count, counter.seconds = 0, 0.0
  times = []
  with jax.set_mesh(mesh), nnx.logical_axis_rules(setup.rules), counter:
    for i in range(warmup + steps):
      t0 = time.perf_counter()
      state, out = call(state)
      jax.block_until_ready((state, out))
      if i >= warmup:
        times.append(time.perf_counter() - t0)
      if i == 0:
        compile_s = counter.seconds
  step_s = statistics.median(times)
  clips = int(config.data.batch_size)
  gmacs, flops = model_flops(config, mode, clips)
  devices = jax.device_count()
  kind = jax.devices()[0].device_kind
  tflops = flops / devices / step_s / 1e12
  peak = peak_tflops(kind)
  stats = jax.local_devices()[0].memory_stats() or {}
  return dict(
      config=rel, model=config.model.name, mode=mode, device_kind=kind, device_count=devices,
      mesh=dict(mesh.shape), batch_per_device=b, global_batch=clips, **settings(config),
      compile_s=round(compile_s, 2), step_s=round(step_s, 5), steps=steps,
      clips_per_s=round(clips / step_s, 3), gmacs_per_clip=round(gmacs, 6),
      model_tflops_per_s_per_device=round(tflops, 4),
      mfu=round(tflops / peak, 4) if peak else "n/a",
      peak_bytes=stats.get("peak_bytes_in_use", "n/a"), compiles=counter.count)


def compiled_peak(config, mode: str, batch_per_device: int) -> int:
  """XLA's peak bytes of the compiled train / eval step at this per-device batch (not run)."""
  c, mesh, setup, abstract_state, _ = prepare(config, batch_per_device)
  spec = batch_spec(c, mode, setup.batch_sharding)
  with jax.set_mesh(mesh), nnx.logical_axis_rules(setup.rules):
    if mode == "train":
      compiled = setup.train_step.lower(abstract_state, spec).compile()
    else:
      weights = (abstract_state.params, abstract_state.frozen, abstract_state.batch_stats)
      compiled = setup.eval_step.lower(weights, spec).compile()
  return _memory_peak(compiled) or 0


def largest_batch(rel: str, config, mode: str, max_batch: int, limit: int | None = None) -> int:
  """The largest per-device batch (a power of two) whose compiled peak fits 90 % of ``limit``
  (default: the device's ``bytes_limit``): batches 1 and 2 compiled, memory extrapolated
  linearly. 1 when the backend reports no limit."""
  limit = limit or (jax.local_devices()[0].memory_stats() or {}).get("bytes_limit")
  if not limit:
    return 1
  peaks = [compiled_peak(config, mode, b) for b in (1, 2)]
  per_clip = max(peaks[1] - peaks[0], 1)
  fit = int((0.9 * limit - (peaks[0] - per_clip)) // per_clip)
  b = 1
  while b * 2 <= min(fit, max_batch):
    b *= 2
  logging.info("%s %s: peak %d B at batch 1, +%d B per clip -> batch %d", rel, mode, peaks[0],
               per_clip, b)
  return b


def collectives(hlo: str) -> dict[str, dict[str, int]]:
  """Per collective kind in an optimised HLO module: instruction count and result bytes (async
  ``-start`` ops: their largest tuple element; ``-done`` ops are not counted again)."""
  out = {k: {"count": 0, "bytes": 0} for k in _COLLECTIVES}
  op = re.compile(r"\s(" + "|".join(_COLLECTIVES) + r")(-start)?\(")
  shape = re.compile(r"\b(" + "|".join(_DTYPE_BYTES) + r")\[([\d,]*)\]")
  for line in hlo.splitlines():
    lhs, eq, rhs = line.partition(" = ")
    if not eq:
      continue
    m = op.search(rhs)
    if not m:
      continue
    sizes = [_DTYPE_BYTES[d] * math.prod(int(x) for x in dims.split(",") if x)
             for d, dims in shape.findall(rhs[:m.start()])]
    out[m.group(1)]["count"] += 1
    out[m.group(1)]["bytes"] += max(sizes, default=0)
  return out


def aot_devices(topology: str) -> tuple[list, str]:
  """Compile-only devices of a TPU slice (or the local CPU devices for ``cpu``) and their name."""
  if topology == "cpu":
    return jax.devices("cpu"), "cpu"
  from jax.experimental import topologies
  name = topology_name(topology)
  return list(topologies.get_topology_desc(topology_name=name, platform="tpu").devices), name


def aot_plan(rel: str, config, topology: str, batch_per_chip: int | None) -> dict[str, Any]:
  """Lowers and compiles the train step for ``topology``; per-chip bytes, FLOPs, collectives."""
  devices, name = aot_devices(topology)
  if config.model.get("depthwise_impl") == "auto":  # decided for the TPU, not this CPU host
    config.model.depthwise_impl = "conv"
  spec = config.mesh if not (_MESH.present and _MESH.value) else parse_mesh(_MESH.value)
  mesh = mesh_lib.make_mesh(spec, devices)
  config, mesh, setup, abstract_state, b = prepare(config, batch_per_chip, mesh)
  batch = batch_spec(config, "train", setup.batch_sharding)
  t0 = time.perf_counter()
  with jax.set_mesh(mesh), nnx.logical_axis_rules(setup.rules):
    lowered = setup.train_step.lower(abstract_state, batch)
    lower_s = time.perf_counter() - t0
    compiled = lowered.compile()
  compile_s = time.perf_counter() - t0
  ma = compiled.memory_analysis()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  weights = (abstract_state.params, abstract_state.frozen, abstract_state.batch_stats)
  gmacs, flops = model_flops(config, "train", int(config.data.batch_size))
  kind = devices[0].device_kind
  return dict(
      config=rel, model=config.model.name, mode="train", aot_topology=name,
      device_kind=kind, device_count=len(devices), mesh=dict(mesh.shape),
      batch_per_chip=b, global_batch=int(config.data.batch_size), **settings(config),
      lower_s=round(lower_s, 1), compile_s=round(compile_s, 1),
      param_bytes_per_chip=mesh_lib.shard_bytes(weights),
      opt_state_bytes_per_chip=mesh_lib.shard_bytes(abstract_state.opt_state),
      peak_bytes_per_chip=_memory_peak(compiled),
      temp_bytes_per_chip=int(ma.temp_size_in_bytes) if ma is not None else None,
      hbm_bytes_per_chip=HBM_BYTES.get(kind),
      # XLA's count: a scanned layer stack's body once, remat recomputation included.
      xla_flops_per_chip=float(cost.get("flops", 0.0)) if cost else None,
      model_flops_per_chip=flops / len(devices), gmacs_per_clip=round(gmacs, 6),
      collectives=collectives(compiled.as_text()))


def _median_s(fn, steps: int, warmup: int) -> float:
  for _ in range(max(warmup, 1)):
    fn()
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def _per_frame_twin(name: str, cfg) -> tuple[dict[str, Any], Any]:
  """The per-frame part of the network and a PyTorch model of the same computation.

  UniFormerV2 without local MHRA, temporal stride or global UniBlocks is CLIP's ViT on every
  frame (open_clip ``VisionTransformer``); Video-FocalNet ``design='spatial_only'`` is the image
  FocalNet on every frame (timm ``FocalNet``). Both run on [B*T, 3, S, S] in PyTorch.
  """
  if name == "uniformerv2":
    from open_clip.transformer import VisionTransformer, QuickGELU
    twin = dict(no_lmhra=True, temporal_downsample=False, n_layers=0, return_list=(),
                mlp_dropout=())
    ref = VisionTransformer(cfg.image_size, cfg.patch_size, cfg.width, cfg.layers, cfg.heads,
                            mlp_ratio=4.0, output_dim=cfg.num_classes, act_layer=QuickGELU)
  else:
    from timm.models.focalnet import FocalNet
    twin = dict(design="spatial_only")
    ref = FocalNet(num_classes=cfg.num_classes, embed_dim=cfg.embed_dim, depths=cfg.depths,
                   focal_levels=cfg.focal_levels, focal_windows=cfg.focal_windows,
                   drop_path_rate=0.0)
  return twin, ref.eval()


def _official_model(path: str, name: str, cfg) -> Any:
  """The released model class from its own file (never copied here), at ``cfg``'s architecture."""
  import types
  if "slowfast.utils.logging" not in sys.modules:  # the UniFormerV2 file's only repo import
    for pkg in ("slowfast", "slowfast.utils"):
      sys.modules.setdefault(pkg, types.ModuleType(pkg))
    stub = types.ModuleType("slowfast.utils.logging")
    stub.get_logger = __import__("logging").getLogger
    sys.modules["slowfast.utils.logging"] = stub
  spec = importlib.util.spec_from_file_location(Path(path).stem, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # timm's @register_model looks its module up
  spec.loader.exec_module(module)
  cls = "VisionTransformer" if name == "uniformerv2" else "VideoFocalNet"
  if not hasattr(module, cls):
    raise app.UsageError(f"--official_file {path}: defines no {cls}, so it is not the released "
                         f"{name} model file (uniformerv2_model.py / videofocalnet.py)")
  if name == "uniformerv2":
    return module.VisionTransformer(
        input_resolution=cfg.image_size, patch_size=cfg.patch_size, width=cfg.width,
        layers=cfg.layers, heads=cfg.heads, output_dim=512, t_size=cfg.num_frames,
        dw_reduction=cfg.dw_reduction, temporal_downsample=cfg.temporal_downsample,
        no_lmhra=cfg.no_lmhra, double_lmhra=cfg.double_lmhra, return_list=list(cfg.return_list),
        n_layers=cfg.n_layers, n_dim=cfg.width, n_head=cfg.n_head, mlp_factor=cfg.mlp_factor,
        mlp_dropout=list(cfg.mlp_dropout), num_classes=cfg.num_classes).eval()
  return module.VideoFocalNet(
      img_size=cfg.image_size, patch_size=cfg.patch_size, num_classes=cfg.num_classes,
      embed_dim=cfg.embed_dim, depths=list(cfg.depths), drop_path_rate=0.0,
      focal_levels=list(cfg.focal_levels), focal_windows=list(cfg.focal_windows),
      num_frames=cfg.num_frames, tubelet_size=cfg.tubelet_size).eval()


def vs_torch(rel: str, config, batch: int | None, steps: int, warmup: int) -> dict[str, Any]:
  """Jitted vidjax forward vs PyTorch eager on CPU: fp32, same threads, same input shape.

  ``ratio_vs_torch`` compares the same computation (:func:`_per_frame_twin`; random weights:
  time does not depend on the values); the full network's time is reported beside it, and with
  ``--official_file`` the released PyTorch model of the whole network (``ratio_vs_official``).
  """
  import torch
  threads = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)
  torch.set_num_threads(threads)
  b = batch or 1
  mcfg = config.model.to_dict()
  mcfg.update(dtype="float32", param_dtype="float32", remat_policy="none")
  full = models.create(mcfg, rngs=nnx.Rngs(0))
  cfg, name = full.cfg, mcfg["name"]
  official = _official_model(_OFFICIAL.value, name, cfg) if _OFFICIAL.value else None
  size = getattr(cfg, "image_size", None)
  x = jnp.full((b, cfg.num_frames, size, size, 3), 0.1, jnp.float32)
  fwd = jax.jit(lambda m, x: m(x))

  def run(model):
    model.eval()
    return _median_s(lambda: fwd(model, x).block_until_ready(), steps, warmup)

  row = dict(config=rel, model=name, mode="infer vs torch", device_kind="cpu",
             threads=threads, batch_per_device=b, dtype="float32",
             depthwise_impl=layers.depthwise_impl(cfg.depthwise_impl),
             jax_version=jax.__version__, torch_version=torch.__version__)
  row["vidjax_s"] = run(full)
  del full
  twin, ref = _per_frame_twin(name, cfg)
  row["vidjax_per_frame_s"] = run(models.create(dict(mcfg, **twin), rngs=nnx.Rngs(0)))
  frames = torch.full((b * cfg.num_frames, 3, size, size), 0.1)
  with torch.inference_mode():
    row["torch_per_frame_s"] = _median_s(lambda: ref(frames), steps, warmup)
  row["ratio_vs_torch"] = round(row["vidjax_per_frame_s"] / row["torch_per_frame_s"], 3)
  if official is not None:
    clip = (torch.full((b, 3, cfg.num_frames, size, size), 0.1) if name == "uniformerv2"
            else torch.full((b, cfg.num_frames, 3, size, size), 0.1))
    with torch.inference_mode():
      row["official_s"] = _median_s(lambda: official(clip), steps, warmup)
    row["ratio_vs_official"] = round(row["vidjax_s"] / row["official_s"], 3)
  for k in ("vidjax_s", "vidjax_per_frame_s", "torch_per_frame_s", "official_s"):
    if k in row:
      row[k] = float(f"{row[k]:.4g}")  # 4 significant digits
  return row


def _gib(x) -> str:
  return "n/a" if not isinstance(x, (int, float)) else f"{x / 2 ** 30:.2f}"


def print_table(rows: list[dict[str, Any]]) -> None:
  if not rows:
    return
  if "ratio_vs_torch" in rows[0]:
    cols = [("config", 34), ("threads", 3), ("batch_per_device", 5), ("depthwise_impl", 6),
            ("vidjax_s", 8), ("vidjax_per_frame_s", 9), ("torch_per_frame_s", 9),
            ("ratio_vs_torch", 6), ("official_s", 8), ("ratio_vs_official", 6)]
    cell = lambda r, c: str(r.get(c, "-"))
  elif "aot_topology" in rows[0]:
    cols = [("config", 34), ("aot_topology", 11), ("mesh", 22), ("batch_per_chip", 6),
            ("remat_policy", 8), ("compile_s", 8), ("param+opt GiB", 13), ("peak GiB", 9),
            ("HBM GiB", 8), ("TFLOP/chip", 10), ("all-gather", 10), ("reduce-scatter", 14),
            ("all-reduce", 10)]
    cell = lambda r, c: {
        "mesh": ",".join(f"{k}={v}" for k, v in r["mesh"].items()),
        "param+opt GiB": _gib(r["param_bytes_per_chip"] + r["opt_state_bytes_per_chip"]),
        "peak GiB": _gib(r["peak_bytes_per_chip"]), "HBM GiB": _gib(r["hbm_bytes_per_chip"]),
        "TFLOP/chip": f"{(r['xla_flops_per_chip'] or 0) / 1e12:.2f}",
        **{k: str(r["collectives"][k]["count"]) for k in _COLLECTIVES if k in r["collectives"]},
    }.get(c, str(r.get(c)))
  else:
    cols = [("config", 34), ("mode", 5), ("device_kind", 14), ("device_count", 3),
            ("dtype", 8), ("batch_per_device", 5), ("remat_policy", 8), ("attention_impl", 6),
            ("compile_s", 8), ("step_s", 9), ("clips_per_s", 9), ("model_tflops_per_s_per_device", 8),
            ("mfu", 6), ("peak GiB", 8), ("compiles", 3)]
    cell = lambda r, c: _gib(r["peak_bytes"]) if c == "peak GiB" else str(r.get(c))
  heads = {"vidjax_per_frame_s": "vj frame", "torch_per_frame_s": "pt frame",
           "ratio_vs_torch": "ratio", "official_s": "official", "ratio_vs_official": "ratio",
           "threads": "thr", "depthwise_impl": "dw", "batch_per_device": "b/dev", "device_count": "n", "model_tflops_per_s_per_device":
           "TFLOP/s", "batch_per_chip": "b/chip", "compiles": "cmp", "remat_policy": "remat",
           "attention_impl": "attn"}
  print("  ".join(f"{heads.get(c, c)[:w]:<{w}}" for c, w in cols))
  for r in rows:
    print("  ".join(f"{cell(r, c)[-w:] if c == 'config' else cell(r, c)[:w]:<{w}}"
                    for c, w in cols))


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  # Measure real compile times, not the persistent cache's.
  jax.config.update("jax_enable_compilation_cache", False)
  rows: list[dict[str, Any]] = []
  rel = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--config=")), None)
  if rel is None and "--config" in sys.argv:
    rel = sys.argv[sys.argv.index("--config") + 1]
  if _VS_TORCH.value:
    if _CONFIG.value is None:
      raise app.UsageError("--vs_torch needs --config")
    if jax.default_backend() != "cpu":
      raise app.UsageError(f"--vs_torch compares CPU forwards, but jax runs on "
                           f"{jax.default_backend()}: run it with JAX_PLATFORMS=cpu")
    missing = [m for m in ("torch", "open_clip", "timm") if importlib.util.find_spec(m) is None]
    if missing:
      raise app.UsageError(f"--vs_torch needs {', '.join(missing)}: pip install -e '.[dev]'")
    if _OFFICIAL.value and not (Path(_OFFICIAL.value).is_file()
                                and _OFFICIAL.value.endswith(".py")):
      raise app.UsageError(f"--official_file {_OFFICIAL.value}: not a Python file")
    rows.append(vs_torch(rel, _CONFIG.value, _BATCH.value, _STEPS.value, _WARMUP.value))
  elif _AOT.value:
    if _CONFIG.value is None:
      raise app.UsageError("--aot_topology needs --config")
    rows.append(aot_plan(rel, _CONFIG.value, _AOT.value, _BATCH.value))
  elif _SWEEP.value:
    items = [(p.partition("@")[0], p.partition("@")[2]) for p in _SWEEP_CONFIGS.value or SWEEP]
    for path, only in items:
      for mode in (only,) if only else ("train", "infer"):
        config = load_config(path)
        b = _BATCH.value or largest_batch(path, config, mode, _MAX_BATCH.value)
        rows.append(measure(path, load_config(path), mode, b, _STEPS.value, _WARMUP.value))
        print_table(rows[-1:])
  else:
    if _CONFIG.value is None:
      raise app.UsageError("--config is required (or --sweep)")
    rows.append(measure(rel, _CONFIG.value, _MODE.value, _BATCH.value, _STEPS.value,
                        _WARMUP.value))
  print_table(rows)
  print(json.dumps(rows, default=str))


if __name__ == "__main__":
  app.run(main)
