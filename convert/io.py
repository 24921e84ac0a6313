"""Reading PyTorch-world weight files into ``{key: np.ndarray}`` without trusting them.

``read_state_dict(path)`` accepts

* ``.safetensors``: ``safetensors.safe_open(framework="numpy")``, memory-mapped and read one
  tensor at a time (BF16 through ``ml_dtypes``, which registers ``bfloat16`` with numpy);
  **torch is not needed and never imported**. safetensors' numpy reader has no float8 / float4,
  so such tensors are refused with their name and dtype.
* ``.pt / .pth / .pyth / .bin / .ckpt`` written by ``torch.save`` (zip format, or the legacy
  format of PyTorch < 1.6), and TorchScript archives (OpenAI's ``ViT-B-16.pt``). These need torch
  (the ``convert`` extra) to hold the tensors.

**No pickle from the file is ever run by Python's or torch's own unpickler**: every pickle stream
(the zip's ``data.pkl``; the legacy format's magic-number, protocol, sys-info, main and
storage-key records; a raw pickle; a TorchScript archive's ``data.pkl``) goes through
:class:`_RestrictedUnpickler`, a ``pickle.Unpickler`` whose ``find_class`` never imports
anything. A global named in the pickle resolves to

* one of the harmless callables of :func:`_safe_globals`: tensor rebuilding (our own functions,
  building tensors from the file's storages with ``torch.frombuffer`` / ``as_strided``), torch
  dtypes / ``Size`` / ``device``, ``collections.OrderedDict``, ``set`` / ``frozenset`` /
  ``complex`` / ``bytearray``, ``_codecs.encode`` (str -> bytes only), numpy scalars / dtypes /
  arrays, TorchScript's list / type-tag helpers (identities);
* otherwise an **inert placeholder class** (yacs ``CfgNode``, ``argparse.Namespace``, an mmengine
  ``HistoryBuffer``, ...). The file may *instantiate* it without calling it (NEWOBJ / NEWOBJ_EX,
  or INST / OBJ without arguments: ``cls.__new__(cls)``, which for the placeholder runs nothing)
  and fill it (BUILD / SETITEMS / APPENDS: discarded), or use it as a value. Nothing of the named
  class is imported or run, so this is safe whatever the name is. Such objects are listed in
  ``Source.skipped``.
* **Calling** a placeholder (REDUCE, or INST / OBJ with arguments: how ``eval``, ``exec``,
  ``os.system``, ``subprocess.Popen``, ``builtins.getattr`` chains... are invoked) is refused:
  :class:`RefusedGlobalError`, one line naming the file, the pickle record and the global.

Why not ``torch.load(weights_only=True)`` with ``torch.serialization.safe_globals``: torch's
weights-only unpickler refuses SETITEMS on any dict subclass, even an allowlisted one, so the
released Video-FocalNet checkpoints (a pickled yacs ``CfgNode``, a dict subclass with
``__dict__`` state) cannot load through it; and it refuses TorchScript archives outright.

TorchScript archives are **not** loaded with ``torch.jit.load``: that compiles the archive's
``code/`` (TorchScript source, which the file controls) and runs, while loading, the
``__setstate__`` method of any module or class that defines one; TorchScript reaches every
registered operator, e.g. ``torch.from_file(name, shared=True, size)`` creates and maps files.
Instead the archive's ``data.pkl`` goes through the same restricted unpickler, its ``__torch__.*``
module objects become plain records of their attributes, and the state dict is what
``torch.jit.load(path).state_dict()`` would give: each module's ``__parameters__`` and
``__buffers__`` as declared in ``code/`` (read as text, never compiled or run), recursively.
Modules with custom ``__getstate__`` state are refused. ``constants.pkl``, ``traced_inputs.pkl``
and ``*.debug_pkl`` are never unpickled.

A truncated or corrupt file raises :class:`UnreadableFileError`, one line naming the file.
Containers are unwrapped (``model_state`` from SlowFast training, ``model`` from Video-FocalNet /
microsoft FocalNet, ``state_dict`` from open_clip / MMAction2, ``module`` / ``model_ema``), a
``module.`` prefix on every key is stripped, and floating tensors are cast to float32.
"""

from __future__ import annotations

import _compat_pickle
import collections
import dataclasses
import hashlib
import os
import pickle
import re
import struct
import tarfile
import zipfile
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

import ml_dtypes  # noqa: F401  (registers numpy "bfloat16", which safetensors.numpy needs)
import numpy as np
from tqdm import tqdm

PICKLE_SUFFIXES = (".pt", ".pth", ".pyth", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
# Checked in this order; the first one holding a tensor dict wins.
CONTAINER_KEYS = ("model_state", "state_dict", "model", "module", "model_ema", "params")
# torch.serialization's legacy format: the first two pickles of every file.
LEGACY_MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL_VERSION = 1001


class UnreadableFileError(ValueError):
  """The file is truncated, corrupt or not in an accepted format (a one-line message)."""


class RefusedGlobalError(UnreadableFileError):
  """A pickle in the file calls a function or class that is not known to be harmless."""

  def __init__(self, path: str, qualname: str, record: str):
    self.path, self.qualname, self.record = path, qualname, record
    super().__init__(
        f"{path}: refused global {qualname}, which the {record} calls; only tensors, plain "
        "containers and inert placeholders for classes the file does not call are loaded "
        "(nothing from the file was executed)")


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
  with open(path, "rb") as f, progress(os.path.getsize(path), "sha256", unit="B") as bar:
    while block := f.read(chunk):
      h.update(block)
      bar.update(len(block))
  return h.hexdigest()


def progress(total: int, desc: str, **kwargs) -> tqdm:
  """A tqdm bar on stderr, shown only on a terminal (pipes and tests see nothing)."""
  return tqdm(total=total, desc=desc, disable=None, leave=False, dynamic_ncols=True, **kwargs)


def _one_line(e: BaseException) -> str:
  text = (str(e).strip().splitlines() or [""])[0]
  text = text if len(text) <= 200 else text[:200] + "..."
  return f"{type(e).__name__}: {text}" if text else type(e).__name__


# ------------------------------------------------------------------------------------ safetensors
def read_safetensors(path: str) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, int]]:
  """(tensors as float32 / integer numpy arrays, header metadata, dtype counts), no torch."""
  from safetensors import safe_open
  out, counts = {}, {}
  with safe_open(path, framework="numpy") as f:
    metadata = f.metadata() or {}
    for key in tqdm(f.keys(), desc="tensors", unit="tensor", disable=None, leave=False):
      dt = f.get_slice(key).get_dtype()
      try:
        arr = f.get_tensor(key)
      except (AttributeError, TypeError) as e:   # numpy has no float8 / float4 dtypes
        raise UnreadableFileError(f"{path}: tensor {key!r} has safetensors dtype {dt}, which "
                                  f"safetensors' numpy reader cannot read ({_one_line(e)})"
                                  ) from None
      out[key] = _to_numpy_fp32(arr, copy=False)   # get_tensor returns a private copy
      counts[dt] = counts.get(dt, 0) + 1
  return out, metadata, counts


def _to_numpy_fp32(arr: np.ndarray, copy: bool = True) -> np.ndarray:
  """Floating arrays become float32; integer / bool arrays keep their dtype."""
  if np.issubdtype(arr.dtype, np.floating) or arr.dtype == ml_dtypes.bfloat16:
    return arr.astype(np.float32, copy=copy)
  return np.array(arr) if copy else np.asarray(arr)


def write_safetensors(tensors: Mapping[str, np.ndarray], path: str,
                      metadata: Mapping[str, str] | None = None) -> None:
  """Writes numpy arrays as .safetensors (no torch)."""
  from safetensors.numpy import save_file
  save_file({k: np.asarray(v, order="C") for k, v in tensors.items()}, path,
            metadata=dict(metadata) if metadata else None)


# ------------------------------------------------------------------------ the restricted unpickler
class _Refused(Exception):
  """Raised from inside the unpickler when the pickle calls a placeholder."""

  def __init__(self, qualname: str):
    super().__init__(qualname)
    self.qualname = qualname


class _PlaceholderMeta(type):
  """Metaclass of the placeholders: calling one (REDUCE, INST / OBJ with arguments) refuses."""
  qualname = "?"

  def __call__(cls, *args, **kwargs):
    del args, kwargs
    raise _Refused(cls.qualname)


class _Inert(metaclass=_PlaceholderMeta):
  """An instance of a class the pickle named but the reader never imported; holds nothing.

  The unpickler creates it with ``cls.__new__(cls)`` (NEWOBJ) and may fill it (BUILD, SETITEMS,
  APPENDS): every one of these is discarded here, so no code of the named class runs.
  """
  qualname = "?"

  def __new__(cls, *args, **kwargs):
    del args, kwargs
    return object.__new__(cls)

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


class _ScriptObject(_Inert):
  """A TorchScript ``__torch__.*`` object: keeps the BUILD state (plain data from the pickle)."""
  state: Any = None

  def __setstate__(self, state):
    self.state = state


class _Marker:
  """A name the pickle may mention as a value (``torch.Tensor`` in ``_rebuild_from_type_v2``)."""

  def __init__(self, name: str):
    self.name = name

  def __repr__(self) -> str:
    return f"<{self.name}>"


@dataclasses.dataclass
class _StorageType:
  """``torch.FloatStorage`` & co. in a persistent id: the element dtype (None: untyped bytes)."""
  name: str
  dtype: Any


class _Storage:
  """Bytes of one torch storage; tensors are views of it (shared, as in torch)."""

  def __init__(self, raw: bytearray, dtype: Any):
    self.raw, self.dtype, self._flat = raw, dtype, {}

  def flat(self, dtype):
    import torch
    if dtype not in self._flat:
      self._flat[dtype] = (torch.frombuffer(self.raw, dtype=dtype) if len(self.raw)
                           else torch.empty(0, dtype=dtype))
    return self._flat[dtype]


def _ints(x: Any, what: str) -> tuple[int, ...]:
  if not (isinstance(x, (tuple, list)) and all(type(i) is int for i in x)):
    raise TypeError(f"tensor {what} must be a tuple of ints, got {x!r:.80}")
  return tuple(x)


def _tensor(storage: Any, offset: Any, size: Any, stride: Any, dtype: Any = None):
  if not isinstance(storage, _Storage):
    raise TypeError(f"a tensor's storage must come from the file, got {type(storage).__name__}")
  dtype = dtype if dtype is not None else storage.dtype
  if dtype is None or type(offset) is not int:
    raise TypeError("tensor without dtype or with a non-integer storage offset")
  return storage.flat(dtype).as_strided(_ints(size, "size"), _ints(stride, "stride"), offset)


def _rebuild_tensor(storage, storage_offset, size, stride):
  return _tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
  del requires_grad, backward_hooks, metadata
  return _tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
  del requires_grad, backward_hooks, metadata
  import torch
  if not isinstance(dtype, torch.dtype):
    raise TypeError(f"_rebuild_tensor_v3: expected a torch dtype, got {dtype!r:.80}")
  return _tensor(storage, storage_offset, size, stride, dtype)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
  del requires_grad, backward_hooks, state
  import torch
  if not isinstance(data, torch.Tensor):
    raise TypeError(f"a parameter must wrap a tensor, got {type(data).__name__}")
  return data


_REBUILDERS = (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter)


def _rebuild_from_type_v2(func, new_type, args, state):
  """Tensor subclasses / tensors with Python attributes: the plain tensor; the rest dropped."""
  del new_type, state
  if func not in _REBUILDERS or not isinstance(args, tuple):
    raise TypeError("_rebuild_from_type_v2 must wrap one of torch's tensor rebuild functions")
  return func(*args)


def _encode(text: Any, encoding: str = "utf-8") -> bytes:
  """``_codecs.encode``: how protocol-2 pickles spell ``bytes``; str -> bytes only."""
  if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
    raise TypeError(f"_codecs.encode is only accepted for str with latin1 / utf-8, got "
                    f"{type(text).__name__} / {encoding!r:.40}")
  return text.encode(encoding)


def _identity(value: Any, *args: Any) -> Any:
  del args
  return value


_STORAGE_DTYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128",
}
_TORCH_DTYPES = ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8",
                 "uint8", "uint16", "uint32", "uint64", "bool", "complex64", "complex128",
                 "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")


def _safe_globals() -> dict[str, Any]:
  """Every global a pickle may resolve to something other than an inert placeholder."""
  import torch
  rc: dict[str, Any] = {
      "collections.OrderedDict": collections.OrderedDict,
      "builtins.set": set, "builtins.frozenset": frozenset, "builtins.complex": complex,
      "builtins.bytearray": bytearray, "_codecs.encode": _encode,
      "torch.Size": torch.Size, "torch.device": torch.device,
      "torch.Tensor": _Marker("torch.Tensor"),
      "torch.nn.parameter.Parameter": _Marker("torch.nn.parameter.Parameter"),
      "torch._utils._rebuild_tensor": _rebuild_tensor,
      "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
      "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
      "torch._utils._rebuild_parameter": _rebuild_parameter,
      "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
      "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
      "torch.storage.UntypedStorage": _StorageType("UntypedStorage", None),
      "torch.UntypedStorage": _StorageType("UntypedStorage", None),
      "numpy.dtype": np.dtype, "numpy.ndarray": np.ndarray,
  }
  try:   # the module numpy's own pickles name: numpy._core (2.x) or numpy.core (1.x)
    from numpy._core import multiarray
  except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray
  for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):  # files from either numpy
    rc[f"{mod}.scalar"] = multiarray.scalar
    rc[f"{mod}._reconstruct"] = multiarray._reconstruct  # noqa: SLF001
  for name, dtype in _STORAGE_DTYPES.items():
    rc[f"torch.{name}"] = _StorageType(name, getattr(torch, dtype))
  for name in _TORCH_DTYPES:
    if hasattr(torch, name):
      rc[f"torch.{name}"] = getattr(torch, name)
  for name in ("build_intlist", "build_floatlist", "build_doublelist", "build_boollist",
               "build_tensorlist", "restore_type_tag"):
    rc[f"torch.jit._pickle.{name}"] = _identity
  return rc


class _RestrictedUnpickler(pickle.Unpickler):
  """``find_class`` never imports: safe globals, else inert placeholders that refuse calls."""

  def __init__(self, file: BinaryIO, safe: Mapping[str, Any], placeholders: dict[str, type],
               persistent_load: Callable[[Any], Any] | None, script: bool = False):
    super().__init__(file, encoding="utf-8")
    self._safe, self._placeholders, self._persistent, self._script = (
        safe, placeholders, persistent_load, script)

  def find_class(self, module: str, name: str) -> Any:
    # Python 2 spellings (protocol < 3 pickles: '__builtin__ eval', 'commands Popen'), mapped as
    # pickle's own fix_imports does; only the name changes, nothing is imported.
    if (module, name) in _compat_pickle.NAME_MAPPING:
      module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
      module = _compat_pickle.IMPORT_MAPPING[module]
    qual = f"{module}.{name}"
    if qual in self._safe:
      return self._safe[qual]
    if qual not in self._placeholders:
      base = _ScriptObject if self._script and module.startswith("__torch__") else _Inert
      self._placeholders[qual] = _PlaceholderMeta(name, (base,), {"qualname": qual})
    return self._placeholders[qual]

  def persistent_load(self, pid: Any) -> Any:
    if self._persistent is None:
      raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
    return self._persistent(pid)


class _PickleReader:
  """Runs every pickle record of one file through :class:`_RestrictedUnpickler`."""

  def __init__(self, path: str):
    self.path, self.safe, self.placeholders = path, _safe_globals(), {}
    self.storages: dict[str, _Storage] = {}

  def load(self, f: BinaryIO, record: str, persistent_load=None, script: bool = False) -> Any:
    try:
      return _RestrictedUnpickler(f, self.safe, self.placeholders, persistent_load,
                                  script).load()
    except _Refused as e:
      raise RefusedGlobalError(self.path, e.qualname, record) from None
    except UnreadableFileError:
      raise
    except Exception as e:  # noqa: BLE001 - anything else in a hostile file: "unreadable"
      raise UnreadableFileError(f"{self.path}: cannot read the {record} ({_one_line(e)}); is "
                                "the file truncated or corrupt?") from None

  def storage_type(self, pid: tuple, n: int) -> tuple[_StorageType, str, int]:
    if not (isinstance(pid, tuple) and len(pid) == n and pid[0] == "storage"
            and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
            and type(pid[4]) is int and pid[4] >= 0):
      raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.120}")
    return pid[1], pid[2], pid[4]

  def placeholder_report(self, src: Source) -> None:
    names = sorted(q for q, cls in self.placeholders.items() if not issubclass(cls, _ScriptObject))
    if names:
      src.skipped.extend(f"global {q} (replaced by an inert placeholder)" for q in names)
      src.notes.append(
          f"restricted unpickler: {len(names)} class(es) the file names but does not call "
          "became inert placeholders (never imported); no code from the file was executed")


def _element_size(dtype) -> int:
  import torch
  return torch.empty((), dtype=dtype).element_size()


def _zip_root(z: zipfile.ZipFile, path: str) -> str:
  roots = [n[:-len("/data.pkl")] for n in z.namelist()
           if n.endswith("/data.pkl") and n.count("/") == 1]
  if len(roots) != 1:
    raise UnreadableFileError(f"{path}: a zip archive but not a PyTorch checkpoint (expected one "
                              f"<name>/data.pkl, found {len(roots)})")
  root = roots[0]
  if f"{root}/byteorder" in z.namelist() and z.read(f"{root}/byteorder").strip() != b"little":
    raise UnreadableFileError(f"{path}: big-endian PyTorch archives are not supported")
  return root


def _read_zip(path: str, z: zipfile.ZipFile, reader: _PickleReader,
              script: bool = False) -> tuple[Any, str]:
  """``torch.save`` zip format and TorchScript archives: ``<root>/data.pkl`` + ``data/<key>``."""
  root = _zip_root(z, path)

  def persistent_load(pid):
    stype, key, numel = reader.storage_type(pid, 5)
    if key not in reader.storages:
      info = z.getinfo(f"{root}/data/{key}")   # KeyError: unreadable
      nbytes = numel if stype.dtype is None else numel * _element_size(stype.dtype)
      if info.file_size != nbytes:
        raise pickle.UnpicklingError(f"storage data/{key} holds {info.file_size} bytes, its "
                                     f"persistent id says {nbytes}")
      raw = bytearray(nbytes)
      with z.open(info) as f:
        if f.readinto(raw) != nbytes:
          raise EOFError(f"storage data/{key} is truncated")
      reader.storages[key] = _Storage(raw, stype.dtype)
    return reader.storages[key]

  with z.open(f"{root}/data.pkl") as f:
    return reader.load(f, f"{root}/data.pkl", persistent_load, script=script), root


def _read_legacy(path: str, reader: _PickleReader) -> Any:
  """``torch.save(..., _use_new_zipfile_serialization=False)``: five pickles, then the storages
  (each an int64 element count and the raw little-endian elements, in storage-key order)."""
  with open(path, "rb") as f:
    magic = reader.load(f, "first pickle (the legacy magic-number record)")
    if magic != LEGACY_MAGIC_NUMBER:
      raise UnreadableFileError(
          f"{path}: not a PyTorch checkpoint (neither a zip archive nor the legacy format: the "
          "first pickle is not torch's magic number; a raw pickle is not accepted)")
    protocol = reader.load(f, "legacy protocol record")
    if protocol != LEGACY_PROTOCOL_VERSION:
      raise UnreadableFileError(f"{path}: unknown legacy PyTorch protocol version {protocol!r:.40}")
    sys_info = reader.load(f, "legacy sys-info record")
    if isinstance(sys_info, dict) and sys_info.get("little_endian", True) is not True:
      raise UnreadableFileError(f"{path}: big-endian PyTorch checkpoints are not supported")

    def persistent_load(pid):
      stype, key, numel = reader.storage_type(pid, 6)
      if pid[5] is not None:
        raise pickle.UnpicklingError("storage views (files from PyTorch < 1.0) are not supported")
      if stype.dtype is None:
        raise pickle.UnpicklingError("untyped storage in a legacy file")
      if key not in reader.storages:   # filled in place below, once the keys are known
        reader.storages[key] = _Storage(bytearray(numel * _element_size(stype.dtype)),
                                        stype.dtype)
      return reader.storages[key]

    obj = reader.load(f, "legacy main record", persistent_load)
    keys = reader.load(f, "legacy storage-keys record")
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)
            and set(keys) == set(reader.storages)):
      raise UnreadableFileError(f"{path}: the legacy storage-keys record does not list the "
                                "storages the weights use")
    for key in keys:
      storage = reader.storages[key]
      head = f.read(8)
      n = struct.unpack("<q", head)[0] if len(head) == 8 else -1
      if n * _element_size(storage.dtype) != len(storage.raw):
        raise UnreadableFileError(f"{path}: storage {key} is truncated or has the wrong size")
      if f.readinto(memoryview(storage.raw)) != len(storage.raw):
        raise UnreadableFileError(f"{path}: storage {key} is truncated")
  return obj


# ------------------------------------------------------------------------------------ TorchScript
_CLASS_RE = re.compile(r"^class (\w+)\(Module\):\n((?:[ \t]+.*\n|[ \t]*\n)*)", re.M)


def _declared_names(body: str, field: str) -> list[str] | None:
  m = re.search(rf"^\s+{field} = \[([^\]]*)\]", body, re.M)
  return None if m is None else re.findall(r'"([^"]*)"', m.group(1))


def _script_declarations(z: zipfile.ZipFile, root: str) -> dict[str, tuple[list, list | None]]:
  """``__torch__.a.b.Cls`` -> (parameters, buffers), from ``code/__torch__/a/b.py`` as text."""
  decls = {}
  prefix = f"{root}/code/"
  for name in z.namelist():
    if name.startswith(prefix) and name.endswith(".py"):
      module = name[len(prefix):-len(".py")].replace("/", ".")
      for m in _CLASS_RE.finditer(z.read(name).decode("utf-8", "replace")):
        params = _declared_names(m.group(2), "__parameters__")
        if params is not None:
          decls[f"{module}.{m.group(1)}"] = (params, _declared_names(m.group(2), "__buffers__"))
  return decls


def _script_state_dict(path: str, z: zipfile.ZipFile, reader: _PickleReader, src: Source
                       ) -> dict[str, Any]:
  """What ``torch.jit.load(path).state_dict()`` holds, without loading the TorchScript."""
  import torch
  obj, root = _read_zip(path, z, reader, script=True)
  decls = _script_declarations(z, root)
  sd: dict[str, Any] = {}
  guessed: list[str] = []

  def walk(o: _ScriptObject, prefix: str) -> None:
    qual = type(o).qualname
    if qual not in decls:
      raise UnreadableFileError(f"{path}: TorchScript module {qual} has no class declaration "
                                f"with __parameters__ in {root}/code/")
    if not isinstance(o.state, dict):
      raise UnreadableFileError(
          f"{path}: TorchScript module {qual} carries custom __getstate__ state (torch.jit.load "
          "would run its __setstate__ code): refused, nothing from the file was executed")
    params, buffers = decls[qual]
    if buffers is None:   # an old printer without __buffers__: every other tensor attribute
      buffers = [k for k, v in o.state.items() if isinstance(v, torch.Tensor) and k not in params]
      guessed.append(qual)
    for k in list(params) + list(buffers):
      v = o.state.get(k)
      if isinstance(v, torch.Tensor):
        sd[prefix + k] = v
      elif v is not None:
        raise UnreadableFileError(f"{path}: TorchScript {prefix + k} is declared a tensor but "
                                  f"holds {type(v).__name__}")
    for k, v in o.state.items():   # submodules, in attribute order as nn.Module.state_dict
      if isinstance(v, _ScriptObject):
        if type(v).qualname in decls:
          walk(v, f"{prefix}{k}.")
        else:   # a TorchScript class that is not a Module: no state-dict entries
          src.skipped.append(f"TorchScript object {prefix}{k} ({type(v).qualname}, not a module)")

  if not isinstance(obj, _ScriptObject):
    raise UnreadableFileError(f"{path}: the TorchScript data.pkl does not hold a module")
  walk(obj, "")
  if guessed:
    src.notes.append(f"TorchScript classes without __buffers__ declarations ({len(guessed)}): "
                     "their non-parameter tensor attributes were read as buffers")
  return sd


def is_torchscript_archive(path: str) -> bool:
  """TorchScript zips carry ``<root>/constants.pkl`` and ``<root>/code/``; torch.save's don't."""
  try:
    with zipfile.ZipFile(path) as z:
      names = z.namelist()
  except (zipfile.BadZipFile, OSError):
    return False
  return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


# ------------------------------------------------------------------------------------ reading
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
  _import_torch(path)
  reader = _PickleReader(path)
  with open(path, "rb") as f:
    head = f.read(4)
  if not head:
    raise UnreadableFileError(f"{path}: the file is empty")
  if head == b"PK\x03\x04":
    try:
      z = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
      raise UnreadableFileError(f"{path}: a truncated or corrupt zip archive "
                                f"({_one_line(e)})") from None
    with z:
      if is_torchscript_archive(path):
        src.file_format = "torchscript"
        obj = _script_state_dict(path, z, reader, src)
        src.notes.append("TorchScript archive: data.pkl read as data by the restricted "
                         "unpickler (torch.jit.load is never called; code/ is not compiled or "
                         "run; constants.pkl is not read)")
      else:
        src.file_format = "torch-zip"
        obj, _ = _read_zip(path, z, reader)
  elif tarfile.is_tarfile(path):
    raise UnreadableFileError(f"{path}: the tar format of PyTorch <= 0.3 is not supported")
  else:
    src.file_format = "torch-legacy"
    obj = _read_legacy(path, reader)
  reader.placeholder_report(src)
  return obj


def _type_name(x: Any) -> str:
  if isinstance(x, _PlaceholderMeta):
    return f"{x.qualname}, a class reference"
  return x.qualname if isinstance(x, _Inert) else type(x).__name__


def _is_tensor(x: Any) -> bool:
  if isinstance(x, np.ndarray):
    return x.dtype.kind in "biuf" or x.dtype == ml_dtypes.bfloat16
  return type(x).__name__ in ("Tensor", "Parameter")


def _tensor_dict_score(obj: Any) -> int:
  if not isinstance(obj, Mapping):
    return 0
  return sum(1 for v in obj.values() if _is_tensor(v))


def _unwrap(obj: Any, src: Source) -> Mapping[str, Any]:
  """Finds the state dict inside a checkpoint container."""
  if not isinstance(obj, Mapping):
    raise ValueError(f"{src.path}: expected a dict of tensors, found {_type_name(obj)}")
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


def _add_tensor(sd: dict[str, np.ndarray], k: Any, v: Any, src: Source) -> None:
  """``sd[k]`` = ``v`` as float32 / integer numpy, or ``v`` listed as skipped (not a tensor)."""
  if isinstance(v, np.ndarray) and _is_tensor(v):
    sd[str(k)] = _to_numpy_fp32(v)
  elif _is_tensor(v):
    dt = str(v.dtype).replace("torch.", "")
    src.dtypes[dt] = src.dtypes.get(dt, 0) + 1
    t = v.detach().cpu()
    sd[str(k)] = (t.float().numpy() if t.is_floating_point() else t.numpy()).copy()
  else:
    src.skipped.append(f"{src.container or 'checkpoint'}[{k!r}] ({_type_name(v)}, not a tensor)")


def read_state_dict(path: str) -> tuple[dict[str, np.ndarray], Source]:
  """Reads a weight file into ``{key: float32 / integer numpy array}`` plus provenance."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--src {path}: no such file")
  if not path.endswith((SAFETENSORS_SUFFIX,) + PICKLE_SUFFIXES):
    raise ValueError(f"--src {path}: unknown file type; expected .safetensors or one of "
                     f"{', '.join(PICKLE_SUFFIXES)}")
  try:
    src = Source(path=os.path.abspath(path), sha256=sha256_of(path), file_format="")
    if path.endswith(SAFETENSORS_SUFFIX):
      src.file_format = "safetensors"
      try:
        tensors, metadata, src.dtypes = read_safetensors(path)
      except UnreadableFileError:
        raise
      except Exception as e:  # noqa: BLE001 - safetensors' own errors on a corrupt file
        raise UnreadableFileError(f"{path}: cannot read this safetensors file "
                                  f"({_one_line(e)}); is it truncated or corrupt?") from None
      if metadata:
        src.notes.append(f"safetensors metadata: {dict(list(metadata.items())[:8])}")
      obj: Mapping[str, Any] = tensors
    else:
      obj = _unwrap(_read_pickle(path, src), src)
  except OSError as e:
    raise UnreadableFileError(f"{path}: cannot read the file ({_one_line(e)})") from None
  sd: dict[str, np.ndarray] = {}
  with progress(len(obj), "tensors", unit="tensor") as bar:
    for k, v in obj.items():
      _add_tensor(sd, k, v, src)
      bar.update(1)
  if not sd:
    raise ValueError(f"{path}: the state dict holds no tensors")
  prefixes = {k.split(".", 1)[0] for k in sd}
  if prefixes == {"module"}:
    sd = {k[len("module."):]: v for k, v in sd.items()}
    src.stripped_prefix = "module."
  return sd, src
