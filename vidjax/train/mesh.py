"""Device mesh and logical-axis sharding, as data (MaxText / big_vision style).

``config.mesh`` names the axes and their sizes, e.g. ``(("data", -1), ("fsdp", 4), ("tensor", 1))``
(-1 = the remaining devices). ``config.sharding_rules`` maps the logical axis names that every
parameter and activation of the models carries (``vidjax/models/layers.py``) to mesh axes:

    logical_spec(("embed", "mlp"), (768, 3072), rules, mesh)   ->  P("fsdp", "tensor")

A mesh axis that does not divide the dimension it is mapped to is dropped for that tensor (e.g.
UniFormerV2-L's local-MHRA width 682 = int(1024 / 1.5) on an fsdp axis of 16), and FSDP axes left
unused that way move to the largest dimension they divide (the leftmost of equal ones), so
pod-scale meshes never hit ``IndivisibleError`` and parameters stay sharded; a tensor that no
dimension of which an axis divides is replicated on that axis. The decision depends only on
(names, shape, rules, mesh shape): every process and every run lays a tensor out the same way.

Flax's own path (``models.abstract`` / ``models.create`` inside ``jax.set_mesh`` +
``nnx.logical_axis_rules``) applies the rules without looking at shapes, so on a pod mesh it
produces shardings such as ``P(None, None, None, 'fsdp')`` for the ``(1, 1, 1, 682, 1024)``
kernel, which raise ``IndivisibleError``; :func:`sharded_abstract` is the shape-aware equivalent.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from absl import logging
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import AbstractMesh, AxisType, Mesh, NamedSharding, PartitionSpec as P

from vidjax import models

BATCH_AXES = ("data", "fsdp")  # mesh axes the batch is split over (when present)
FSDP_AXES = ("fsdp",)          # axes that shard parameters wherever they divide
_FSDP_MIN_SIZE = 2 ** 12       # parameters smaller than this stay replicated on FSDP axes


def make_mesh(spec: Sequence[Sequence[Any]], devices: Sequence[Any] | None = None) -> Mesh:
  """The mesh of ``config.mesh`` over ``devices`` (default: all), GSPMD-style Auto axes."""
  devices = list(jax.devices() if devices is None else devices)
  names = [str(n) for n, _ in spec]
  sizes = [int(s) for _, s in spec]
  if len(set(names)) != len(names):
    raise ValueError(f"config.mesh={spec}: repeated axis names")
  if sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
    raise ValueError(f"config.mesh={spec}: sizes must be positive, with at most one -1")
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if len(devices) % known:
      raise ValueError(f"config.mesh={spec}: {len(devices)} devices are not divisible by "
                       f"the fixed axes ({known})")
    sizes[sizes.index(-1)] = len(devices) // known
  if math.prod(sizes) != len(devices):
    raise ValueError(f"config.mesh={spec}: {math.prod(sizes)} devices requested, "
                     f"{len(devices)} available")
  return jax.make_mesh(sizes, names, axis_types=(AxisType.Auto,) * len(names), devices=devices)


def _axes(rule: Any) -> tuple[str, ...]:
  if rule is None:
    return ()
  return (rule,) if isinstance(rule, str) else tuple(rule)


def logical_spec(names: Sequence[str | None], shape: Sequence[int], rules: Any,
                 mesh_shape: dict[str, int]) -> P:
  """PartitionSpec of a tensor with logical axis ``names``; axes that do not divide are dropped."""
  table = dict(rules)
  used: set[str] = set()
  spec: list[Any] = []
  for name, dim in zip(names, shape):
    keep: list[str] = []
    for axis in _axes(table.get(name)) if name is not None else ():
      size = mesh_shape.get(axis, 1)
      if axis in used or size == 1:
        continue
      if dim % (math.prod(mesh_shape[a] for a in keep) * size) == 0:
        keep.append(axis)
    used.update(keep)
    spec.append(None if not keep else keep[0] if len(keep) == 1 else tuple(keep))
  if math.prod(shape) >= _FSDP_MIN_SIZE:
    # An FSDP axis the rules could not place goes to the largest unsharded dimension it divides,
    # else to the largest already-sharded one that the product of its axes still divides
    # (682 x 1024 with 1024 on `tensor`: fsdp joins it); ties go to the leftmost dimension.
    order = sorted(range(len(shape)), key=lambda i: (-shape[i], i))
    for axis in FSDP_AXES:
      size = mesh_shape.get(axis, 1)
      if size == 1 or axis in used:
        continue
      held = lambda i: math.prod(mesh_shape[a] for a in _axes(spec[i]))
      fits = ([i for i in order if spec[i] is None and shape[i] % size == 0]
              + [i for i in order if spec[i] is not None and shape[i] % (held(i) * size) == 0])
      if fits:
        i = fits[0]
        spec[i] = axis if spec[i] is None else (*_axes(spec[i]), axis)
        used.add(axis)
  return P(*spec)


def _names(variable: nnx.Variable) -> tuple[str | None, ...]:
  meta = variable.get_metadata()
  names = meta.get("out_sharding") or meta.get("sharding_names") or meta.get("sharding")
  shape = variable.get_value().shape
  if not names:
    return (None,) * len(shape)
  names = tuple(names)
  # Layers stacked by nnx.vmap (scan_layers) carry a leading axis without a name.
  return (None,) * (len(shape) - len(names)) + names


def state_shardings(state: Any, rules: Any, mesh: Mesh | AbstractMesh) -> Any:
  """``state`` (an ``nnx.State``) with every Variable's value replaced by its NamedSharding.

  Same tree structure as ``state``, so it serves as ``jax.jit`` in/out shardings, as the
  ``rest`` argument of ``optax.tree_map_params`` and as orbax restore targets.
  """
  shape = dict(mesh.shape)

  def one(v):
    if not isinstance(v, nnx.Variable):
      return NamedSharding(mesh, P())
    return v.replace(NamedSharding(mesh, logical_spec(_names(v), v.get_value().shape, rules,
                                                      shape)))

  return jax.tree.map(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def sharded_abstract(model_config: Any, rules: Any, mesh: Mesh | AbstractMesh) -> nnx.Module:
  """``models.abstract(model_config)`` whose ShapeDtypeStructs carry :func:`logical_spec`
  shardings on ``mesh`` (a device mesh or a ``jax.sharding.AbstractMesh``): divisible by
  construction, for sizing and compiling a model for a mesh without devices."""
  model = models.abstract(model_config)
  graphdef, state = nnx.split(model)
  shardings = state_shardings(state, rules, mesh)
  state = jax.tree.map(
      lambda v, s: v.replace(jax.ShapeDtypeStruct(v.get_value().shape, v.get_value().dtype,
                                                  sharding=s.get_value())),
      state, shardings, is_leaf=lambda x: isinstance(x, nnx.Variable))
  return nnx.merge(graphdef, state)


def shard_bytes(tree: Any) -> int:
  """Bytes one device holds of ``tree``'s leaves (arrays or ShapeDtypeStructs with a sharding,
  which every device of its mesh holds an equal shard of); unsharded leaves count whole."""
  total = 0
  for x in jax.tree.leaves(tree):
    sharding = getattr(x, "sharding", None)
    shape = sharding.shard_shape(x.shape) if sharding is not None else x.shape
    total += math.prod(shape) * np.dtype(x.dtype).itemsize
  return total


def batch_axes(mesh: Mesh) -> tuple[str, ...]:
  """The mesh axes the batch dimension is split over (``data`` and ``fsdp`` when present)."""
  return tuple(a for a in BATCH_AXES if a in mesh.shape)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension over :func:`batch_axes`, everything else replicated."""
  return NamedSharding(mesh, P(batch_axes(mesh)))


def batch_devices(mesh: Mesh) -> int:
  """How many ways the batch is split: the product of the batch axes' sizes."""
  return math.prod(mesh.shape[a] for a in batch_axes(mesh))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def put_global(tree: Any, shardings: Any) -> Any:
  """Host values identical on every process -> global arrays laid out with ``shardings``
  (shard by shard: works across processes, unlike ``jax.device_put``)."""
  def put(x, s):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, s, lambda idx: x[idx])
  return jax.tree.map(put, tree, shardings)


def bytes_per_device(tree: Any) -> dict[Any, int]:
  """Bytes of ``tree``'s arrays resident on each device (what FSDP divides)."""
  out: dict[Any, int] = {}
  for x in jax.tree.leaves(tree):
    for shard in getattr(x, "addressable_shards", ()):
      out[shard.device] = out.get(shard.device, 0) + shard.data.nbytes
  return out


def exit_all_processes(code: int) -> None:
  """Ends every process of a finished multi-process run together (does not return).

  jax's at-exit ``jax.distributed.shutdown()`` races on a loaded machine: the coordinator can
  destroy its gRPC server while another process's last RPC is still queued, and XLA aborts it
  (``server.cc: Check failed: queue.Pop() == nullptr``, exit -6) after the run has finished and
  saved. After a barrier no process has collective work left, so the clients leave first and the
  coordinator (process 0, which hosts the service) last, without the shutdown handshake.
  """
  multihost_utils.sync_global_devices("vidjax:exit")
  logging.flush()
  sys.stdout.flush()
  sys.stderr.flush()
  if jax.process_index() == 0:
    time.sleep(1.0)  # the other processes are gone before the service goes
  os._exit(code)
