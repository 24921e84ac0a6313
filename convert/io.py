"""Reading PyTorch-world weight files into ``{key: np.ndarray}`` without trusting them.

``read_state_dict(path)`` accepts

* ``.safetensors``: parsed here with numpy (bf16 / fp16 / fp8 through ``ml_dtypes``); **torch is not
  needed and never imported**.
* ``.pt / .pth / .pyth / .bin`` pickles (needs torch, the ``convert`` extra): first
  ``torch.load(weights_only=True)``. When that refuses a non-tensor object (a yacs ``CfgNode`` or an
  ``argparse.Namespace`` saved beside the weights, numpy scalars...), the file is re-read with a
  restricted unpickler: only torch's tensor-rebuilding globals are real, every other class or
  function named in the pickle becomes an inert placeholder, so **no code from the file runs**; the
  skipped objects are listed in ``Source.skipped``.
* TorchScript archives (OpenAI's ``ViT-B-16.pt``; a zip holding ``constants.pkl`` and ``code/``):
  ``torch.jit.load(map_location='cpu').state_dict()``.

Containers are unwrapped (``model_state`` from SlowFast training, ``model`` from Video-FocalNet /
microsoft FocalNet, ``state_dict`` from open_clip / MMAction2, ``module`` / ``model_ema``), a
``module.`` prefix on every key is stripped, and floating tensors are cast to float32.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import re
import struct
import types
import warnings
import zipfile
from collections.abc import Mapping
from typing import Any

import ml_dtypes
import numpy as np

PICKLE_SUFFIXES = (".pt", ".pth", ".pyth", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
# Checked in this order; the first one holding a tensor dict wins.
CONTAINER_KEYS = ("model_state", "state_dict", "model", "module", "model_ema", "params")


@dataclasses.dataclass
class Source:
  """What was read and how: goes into the conversion report and ``vidjax.json``."""
  path: str
  sha256: str
  file_format: str              # safetensors | torch-zip | torch-legacy | torchscript
  container: str = ""           # e.g. "checkpoint['model_state']", "" for a flat state dict
  stripped_prefix: str = ""     # e.g. "module."
  skipped: list[str] = dataclasses.field(default_factory=list)   # non-tensor entries not loaded
  notes: list[str] = dataclasses.field(default_factory=list)
  dtypes: dict[str, int] = dataclasses.field(default_factory=dict)  # source dtype -> tensor count

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def sha256_of(path: str, chunk: int = 1 << 22) -> str:
  """Hex sha256 of a file, streamed."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    while block := f.read(chunk):
      h.update(block)
  return h.hexdigest()


# ------------------------------------------------------------------------------------ safetensors
_ST_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
    "U16": np.uint16, "U32": np.uint32, "U64": np.uint64, "BOOL": np.bool_,
}


def read_safetensors(path: str) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, int]]:
  """Parses a .safetensors file with numpy only: (tensors, header metadata, dtype counts)."""
  with open(path, "rb") as f:
    raw = f.read()
  if len(raw) < 8:
    raise ValueError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
  (n,) = struct.unpack("<Q", raw[:8])
  try:
    header = json.loads(raw[8:8 + n])
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"{path}: not a safetensors file (bad JSON header: {e})") from None
  metadata = header.pop("__metadata__", None) or {}
  data = memoryview(raw)[8 + n:]
  out, counts = {}, {}
  for key, entry in header.items():
    dt = entry["dtype"]
    if dt not in _ST_DTYPES:
      raise ValueError(f"{path}: tensor {key!r} has unsupported safetensors dtype {dt}")
    begin, end = entry["data_offsets"]
    arr = np.frombuffer(data[begin:end], dtype=_ST_DTYPES[dt]).reshape(entry["shape"])
    out[key] = _to_numpy_fp32(arr)
    counts[dt] = counts.get(dt, 0) + 1
  return out, metadata, counts


def _to_numpy_fp32(arr: np.ndarray) -> np.ndarray:
  """Floating arrays become float32 (copies); integer / bool arrays are copied unchanged."""
  if np.issubdtype(arr.dtype, np.floating) or arr.dtype in (ml_dtypes.bfloat16,
                                                            ml_dtypes.float8_e4m3fn,
                                                            ml_dtypes.float8_e5m2):
    return np.array(arr, dtype=np.float32)
  return np.array(arr)


def write_safetensors(tensors: Mapping[str, np.ndarray], path: str,
                      metadata: Mapping[str, str] | None = None) -> None:
  """Writes numpy arrays as .safetensors (no torch)."""
  from safetensors.numpy import save_file
  save_file({k: np.asarray(v, order="C") for k, v in tensors.items()}, path,
            metadata=dict(metadata) if metadata else None)


# ------------------------------------------------------------------------------------ pickles
class _Inert:
  """Stands in for a class or function the restricted unpickler refused to import.

  Calling it, building it or filling it records nothing and runs nothing.
  """
  qualname = "?"

  def __init__(self, *args, **kwargs):
    del args, kwargs

  def __setstate__(self, state):
    del state

  def __setitem__(self, key, value):
    del key, value

  def append(self, value):
    del value

  def extend(self, values):
    del values

  def __repr__(self) -> str:
    return f"<not loaded: {self.qualname}>"


def _allowed_globals() -> dict[str, Any]:
  """torch's own weights_only allow-list (tensor rebuilding, dtypes, OrderedDict...)."""
  import collections

  import torch
  allowed: dict[str, Any] = {}
  try:
    from torch import _weights_only_unpickler
    allowed.update(_weights_only_unpickler._get_allowed_globals())  # noqa: SLF001
  except (ImportError, AttributeError):  # pragma: no cover - older / newer torch
    pass
  allowed.setdefault("collections.OrderedDict", collections.OrderedDict)
  for name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter",
               "_rebuild_parameter_with_state"):
    if hasattr(torch._utils, name):  # noqa: SLF001
      allowed.setdefault(f"torch._utils.{name}", getattr(torch._utils, name))  # noqa: SLF001
  allowed.setdefault("torch.Size", torch.Size)
  allowed.setdefault("torch.device", torch.device)
  for name in ("float32", "float16", "bfloat16", "float64", "int64", "int32", "uint8", "bool"):
    allowed.setdefault(f"torch.{name}", getattr(torch, name))
  return allowed


def _restricted_pickle_module(skipped: list[str]) -> types.ModuleType:
  """A ``pickle_module`` for ``torch.load`` whose Unpickler never imports unknown globals."""
  allowed = _allowed_globals()

  class RestrictedUnpickler(pickle.Unpickler):

    def find_class(self, module: str, name: str):
      qual = f"{module}.{name}"
      if qual in allowed:
        return allowed[qual]
      if qual not in skipped:
        skipped.append(qual)
      return type(name, (_Inert,), {"qualname": qual})

  mod = types.ModuleType("vidjax_restricted_pickle")
  mod.Unpickler = RestrictedUnpickler
  mod.load = pickle.load
  mod.__name__ = "vidjax_restricted_pickle"
  return mod


def is_torchscript_archive(path: str) -> bool:
  """TorchScript zips carry ``<root>/constants.pkl`` and ``<root>/code/``; torch.save's don't."""
  if not zipfile.is_zipfile(path):
    return False
  with zipfile.ZipFile(path) as z:
    names = z.namelist()
  return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _import_torch(path: str):
  try:
    import torch
  except ImportError as e:
    raise ImportError(
        f"{path}: reading PyTorch pickles (.pt/.pth/.pyth/.bin) needs torch: "
        "pip install -e '.[convert]'. .safetensors files convert without torch.") from e
  if torch is None:  # sys.modules['torch'] = None
    raise ImportError(f"{path}: torch is unavailable; only .safetensors files can be read")
  return torch


def _read_pickle(path: str, src: Source) -> Any:
  torch = _import_torch(path)
  if is_torchscript_archive(path):
    src.file_format = "torchscript"
    src.notes.append("TorchScript archive: read with torch.jit.load(map_location='cpu')."
                     "state_dict() (TorchScript, not Python pickle code)")
    with warnings.catch_warnings():   # torch >= 2.10 marks torch.jit as deprecated
      warnings.simplefilter("ignore", FutureWarning)
      return dict(torch.jit.load(path, map_location="cpu").state_dict())
  src.file_format = "torch-zip" if zipfile.is_zipfile(path) else "torch-legacy"
  try:
    return torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as e:
    m = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
    refused = f"refused {m.group(1)}" if m else f"refused a non-tensor object ({type(e).__name__})"
    skipped: list[str] = []
    obj = torch.load(path, map_location="cpu", weights_only=False,
                     pickle_module=_restricted_pickle_module(skipped))
    src.notes.append(
        f"torch.load(weights_only=True) {refused}; re-read with a restricted unpickler that "
        "replaces "
        f"{len(skipped)} unknown class(es)/function(s) by inert placeholders: "
        "no code from the file was executed")
    src.skipped.extend(f"global {q} (replaced by an inert placeholder)" for q in skipped)
    return obj


def _type_name(x: Any) -> str:
  return x.qualname if isinstance(x, _Inert) else type(x).__name__


def _is_tensor(x: Any) -> bool:
  return isinstance(x, np.ndarray) or type(x).__name__ in ("Tensor", "Parameter")


def _tensor_dict_score(obj: Any) -> int:
  if not isinstance(obj, Mapping):
    return 0
  return sum(1 for v in obj.values() if _is_tensor(v))


def _unwrap(obj: Any, src: Source) -> Mapping[str, Any]:
  """Finds the state dict inside a checkpoint container."""
  if not isinstance(obj, Mapping):
    raise ValueError(f"{src.path}: expected a dict of tensors, found {type(obj).__name__}")
  path = "checkpoint"
  for _ in range(3):   # e.g. {'state_dict': {'model': {...}}} at most a few levels deep
    if _tensor_dict_score(obj) and all(_is_tensor(v) for v in obj.values()):
      break
    inner = next((k for k in CONTAINER_KEYS if _tensor_dict_score(obj.get(k))), None)
    if inner is None:
      if _tensor_dict_score(obj):
        break  # a flat dict with some non-tensor entries: those are skipped below
      raise ValueError(
          f"{src.path}: no state dict found; top-level keys {sorted(map(str, obj))[:20]}, "
          f"looked for a dict of tensors under {list(CONTAINER_KEYS)}")
    for k, v in obj.items():
      if k != inner:
        src.skipped.append(f"{path}[{k!r}] ({_type_name(v)}, not weights)")
    obj, path = obj[inner], f"{path}[{inner!r}]"
  src.container = "" if path == "checkpoint" else path
  return obj


def read_state_dict(path: str) -> tuple[dict[str, np.ndarray], Source]:
  """Reads a weight file into ``{key: float32 / integer numpy array}`` plus provenance."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--src {path}: no such file")
  src = Source(path=os.path.abspath(path), sha256=sha256_of(path), file_format="")
  if path.endswith(SAFETENSORS_SUFFIX):
    src.file_format = "safetensors"
    tensors, metadata, src.dtypes = read_safetensors(path)
    if metadata:
      src.notes.append(f"safetensors metadata: {dict(list(metadata.items())[:8])}")
    obj: Mapping[str, Any] = tensors
  elif path.endswith(PICKLE_SUFFIXES):
    obj = _unwrap(_read_pickle(path, src), src)
  else:
    raise ValueError(f"--src {path}: unknown file type; expected .safetensors or one of "
                     f"{', '.join(PICKLE_SUFFIXES)}")
  sd: dict[str, np.ndarray] = {}
  for k, v in obj.items():
    if isinstance(v, np.ndarray):
      sd[str(k)] = _to_numpy_fp32(v)
    elif _is_tensor(v):
      dt = str(v.dtype).replace("torch.", "")
      src.dtypes[dt] = src.dtypes.get(dt, 0) + 1
      t = v.detach().cpu()
      sd[str(k)] = (t.float().numpy() if t.is_floating_point() else t.numpy()).copy()
    else:
      src.skipped.append(f"{src.container or 'checkpoint'}[{k!r}] ({_type_name(v)}, not a tensor)")
  if not sd:
    raise ValueError(f"{path}: the state dict holds no tensors")
  prefixes = {k.split(".", 1)[0] for k in sd}
  if prefixes == {"module"}:
    sd = {k[len("module."):]: v for k, v in sd.items()}
    src.stripped_prefix = "module."
  return sd, src
