"""Key/shape table of the official UniFormerV2 state dict <-> vidjax ``uniformerv2.Model`` paths.

numpy only (no torch): the converters read the PyTorch files and call :func:`to_flax` /
:func:`from_flax`. Official keys are those of the SlowFast wrapper ``Uniformerv2`` (prefix
``backbone.``; ``OpenGVLab/UniFormerV2`` ``slowfast/models/uniformerv2_model.py``), listed in
``state_dict()`` order. C = width, p = patch, kT = 3 with temporal_downsample else 1,
L = (image_size/p)² + 1, d = int(C // dw_reduction), D = round(mlp_factor·C); ``i`` = resblock,
``j`` = global block, ``k`` in {1, 2} (``lmhra2`` only with double_lmhra).

    official key (backbone. ...)                torch shape       vidjax path                          transform
    class_embedding                             [C]               class_embedding                      copy
    positional_embedding                        [L,C]             positional_embedding                 copy
    conv1.weight                                [C,3,kT,p,p]      conv1/kernel                         OIDHW->DHWIO (2,3,4,1,0)
    ln_pre.{weight,bias}                        [C]               ln_pre/{scale,bias}                  copy
    transformer.temporal_cls_token              [1,1,C]           transformer/temporal_cls_token       copy
    transformer.balance      (not when frozen)  [C]               transformer/balance                  copy
    transformer.resblocks.i.lmhrak.pos_embed.0.{weight,bias}       [C]    .../resblocks/i/lmhrak/pos_embed/layers/0/{scale,bias}  copy (BatchNorm3d)
    transformer.resblocks.i.lmhrak.pos_embed.0.running_{mean,var}  [C]    .../layers/0/{mean,var}   copy (nnx.BatchStat)
    transformer.resblocks.i.lmhrak.pos_embed.0.num_batches_tracked []     (none)                    from_flax writes int64 0
    transformer.resblocks.i.lmhrak.pos_embed.1.weight   [d,C,1,1,1]   .../layers/1/kernel          OIDHW->DHWIO
    transformer.resblocks.i.lmhrak.pos_embed.2.weight   [d,1,3,1,1]   .../layers/2/kernel          OIDHW->DHWIO (depthwise, I/g = 1)
    transformer.resblocks.i.lmhrak.pos_embed.3.weight   [C,d,1,1,1]   .../layers/3/kernel          OIDHW->DHWIO
    transformer.resblocks.i.lmhrak.pos_embed.{1,2,3}.bias  [d],[d],[C] .../layers/{1,2,3}/bias     copy
    transformer.resblocks.i.attn.in_proj_weight [3C,C]            .../resblocks/i/attn/{q,k,v}_proj/kernel  rows [q;k;v] split, each .T
    transformer.resblocks.i.attn.in_proj_bias   [3C]              .../resblocks/i/attn/{q,k,v}_proj/bias    split in 3
    transformer.resblocks.i.attn.out_proj.weight [C,C] (+ bias)   .../resblocks/i/attn/out_proj/kernel      .T
    transformer.resblocks.i.ln_{1,2}.{weight,bias} [C]            .../resblocks/i/ln_{1,2}/{scale,bias}     copy
    transformer.resblocks.i.mlp.c_fc.weight     [4C,C] (+ bias)   .../resblocks/i/mlp/c_fc/kernel           .T
    transformer.resblocks.i.mlp.c_proj.weight   [C,4C] (+ bias)   .../resblocks/i/mlp/c_proj/kernel         .T
    transformer.dpe.j.weight                    [C,1,3,3,3]       transformer/dpe/j/kernel             OIDHW->DHWIO (depthwise)
    transformer.dpe.j.bias                      [C]               transformer/dpe/j/bias               copy
    transformer.dec.j.attn.in_proj_{weight,bias} [3C,C],[3C]      transformer/dec/j/attn/{q,k,v}_proj  split, .T
    transformer.dec.j.attn.out_proj.{weight,bias} [C,C],[C]       transformer/dec/j/attn/out_proj      .T
    transformer.dec.j.ln_{1,2,3}.{weight,bias}  [C]               transformer/dec/j/ln_{1,2,3}/{scale,bias}  copy
    transformer.dec.j.mlp.c_fc.{weight,bias}    [D,C],[D]         transformer/dec/j/mlp/c_fc           .T
    transformer.dec.j.mlp.c_proj.{weight,bias}  [C,D],[C]         transformer/dec/j/mlp/c_proj         .T
    transformer.proj.0.{weight,bias}            [C]               transformer/proj/norm/{scale,bias}   copy (head LayerNorm)
    transformer.proj.2.weight                   [classes,C]       transformer/proj/fc/kernel           .T (head Linear)
    transformer.proj.2.bias                     [classes]         transformer/proj/fc/bias             copy

B/16 K400 (no lmhra): 219 keys. With ``scan_layers=True`` the per-resblock arrays are stacked on a
new leading axis and the index ``i`` disappears from the vidjax path
(``transformer/resblocks/attn/q_proj/kernel`` is ``[layers, C, C]``).

Dtypes are preserved in both directions (readers cast). ``num_batches_tracked`` has no Flax
counterpart: :func:`to_flax` requires it (it is part of the official key set) and drops it,
:func:`from_flax` writes ``int64 0``. Only the released architecture has an official layout:
``fusion='sequential'``, ``num_queries=1``, ``use_dpe=True``; ablation configs raise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

PREFIX = "backbone."


def _split3(w: np.ndarray) -> list[np.ndarray]:
  return list(np.split(w, 3, axis=0))


# kind -> (torch array -> list of flax arrays, list of flax arrays -> torch array,
#          torch shape -> list of flax shapes)
_TRANSFORMS: dict[str, tuple[Callable, Callable, Callable]] = {
    "copy": (lambda w: [w], lambda ws: ws[0], lambda s: [s]),
    "linear": (lambda w: [w.T], lambda ws: ws[0].T, lambda s: [s[::-1]]),
    "conv3d": (lambda w: [w.transpose(2, 3, 4, 1, 0)], lambda ws: ws[0].transpose(4, 3, 0, 1, 2),
               lambda s: [(s[2], s[3], s[4], s[1], s[0])]),
    "in_proj_weight": (lambda w: [x.T for x in _split3(w)],
                       lambda ws: np.concatenate([x.T for x in ws], axis=0),
                       lambda s: [(s[1], s[0] // 3)] * 3),
    "in_proj_bias": (_split3, lambda ws: np.concatenate(ws, axis=0),
                     lambda s: [(s[0] // 3,)] * 3),
    "counter": (lambda w: [], lambda ws: np.zeros((), np.int64), lambda s: []),
}

# (official key, torch shape, transform kind, vidjax paths)
_Row = tuple[str, tuple[int, ...], str, tuple[tuple[Any, ...], ...]]


def _check_released(cfg: Any) -> None:
  bad = [f"model.{name}={getattr(cfg, name)!r} (released: {want!r})"
         for name, want in (("fusion", "sequential"), ("num_queries", 1), ("use_dpe", True))
         if getattr(cfg, name) != want]
  if bad:
    raise ValueError("convert/uniformerv2_layout: no official checkpoint layout for the ablation "
                     f"config {', '.join(bad)}")


def _rows(cfg: Any) -> list[_Row]:
  """The official table for ``cfg`` (a resolved ``uniformerv2.Config``), in state-dict order."""
  _check_released(cfg)
  c, p = cfg.width, cfg.patch_size
  kt = 3 if cfg.temporal_downsample else 1
  re_d, d_mlp = int(c // cfg.dw_reduction), round(cfg.mlp_factor * c)
  rows: list[_Row] = []

  def add(key: str, shape, kind: str, *paths):
    rows.append((PREFIX + key, tuple(shape), kind, tuple(paths)))

  def norm(key: str, path: tuple, n: int):
    add(f"{key}.weight", (n,), "copy", path + ("scale",))
    add(f"{key}.bias", (n,), "copy", path + ("bias",))

  def linear(key: str, path: tuple, cin: int, cout: int):
    add(f"{key}.weight", (cout, cin), "linear", path + ("kernel",))
    add(f"{key}.bias", (cout,), "copy", path + ("bias",))

  def attn(key: str, path: tuple):
    add(f"{key}.in_proj_weight", (3 * c, c), "in_proj_weight",
        *(path + (f"{n}_proj", "kernel") for n in "qkv"))
    add(f"{key}.in_proj_bias", (3 * c,), "in_proj_bias",
        *(path + (f"{n}_proj", "bias") for n in "qkv"))
    linear(f"{key}.out_proj", path + ("out_proj",), c, c)

  def conv(key: str, path: tuple, shape):
    add(f"{key}.weight", shape, "conv3d", path + ("kernel",))
    add(f"{key}.bias", (shape[0],), "copy", path + ("bias",))

  add("class_embedding", (c,), "copy", ("class_embedding",))
  add("positional_embedding", (cfg.grid ** 2 + 1, c), "copy", ("positional_embedding",))
  add("conv1.weight", (c, 3, kt, p, p), "conv3d", ("conv1", "kernel"))
  norm("ln_pre", ("ln_pre",), c)
  t = ("transformer",)
  add("transformer.temporal_cls_token", (1, 1, c), "copy", t + ("temporal_cls_token",))
  if not cfg.frozen:
    add("transformer.balance", (c,), "copy", t + ("balance",))
  lmhras = [] if cfg.no_lmhra else (["lmhra1", "lmhra2"] if cfg.double_lmhra else ["lmhra1"])
  for i in range(cfg.layers):
    key, path = f"transformer.resblocks.{i}", t + ("resblocks", i)
    for m in lmhras:
      k, q = f"{key}.{m}.pos_embed", path + (m, "pos_embed", "layers")
      norm(f"{k}.0", q + (0,), c)
      add(f"{k}.0.running_mean", (c,), "copy", q + (0, "mean"))
      add(f"{k}.0.running_var", (c,), "copy", q + (0, "var"))
      add(f"{k}.0.num_batches_tracked", (), "counter")
      conv(f"{k}.1", q + (1,), (re_d, c, 1, 1, 1))
      conv(f"{k}.2", q + (2,), (re_d, 1, 3, 1, 1))
      conv(f"{k}.3", q + (3,), (c, re_d, 1, 1, 1))
    attn(f"{key}.attn", path + ("attn",))
    norm(f"{key}.ln_1", path + ("ln_1",), c)
    linear(f"{key}.mlp.c_fc", path + ("mlp", "c_fc"), c, 4 * c)
    linear(f"{key}.mlp.c_proj", path + ("mlp", "c_proj"), 4 * c, c)
    norm(f"{key}.ln_2", path + ("ln_2",), c)
  for j in range(cfg.n_layers):
    conv(f"transformer.dpe.{j}", t + ("dpe", j), (c, 1, 3, 3, 3))
  for j in range(cfg.n_layers):
    key, path = f"transformer.dec.{j}", t + ("dec", j)
    attn(f"{key}.attn", path + ("attn",))
    norm(f"{key}.ln_1", path + ("ln_1",), c)
    linear(f"{key}.mlp.c_fc", path + ("mlp", "c_fc"), c, d_mlp)
    linear(f"{key}.mlp.c_proj", path + ("mlp", "c_proj"), d_mlp, c)
    norm(f"{key}.ln_2", path + ("ln_2",), c)
    norm(f"{key}.ln_3", path + ("ln_3",), c)
  norm("transformer.proj.0", t + ("proj", "norm"), c)
  linear("transformer.proj.2", t + ("proj", "fc"), c, cfg.num_classes)
  return rows


def official_shapes(cfg: Any) -> dict[str, tuple[int, ...]]:
  """Every key of the official wrapper's ``state_dict()`` with its torch shape, in order."""
  return {key: shape for key, shape, _, _ in _rows(cfg)}


def _is_block(path: tuple) -> bool:
  return path[:2] == ("transformer", "resblocks")


def _stack(flat: dict[tuple, np.ndarray], layers: int) -> dict[tuple, np.ndarray]:
  """Per-resblock paths ``(..., resblocks, i, *rest)`` -> ``(..., resblocks, *rest)`` stacked."""
  out = {p: v for p, v in flat.items() if not _is_block(p)}
  rests = sorted({p[3:] for p in flat if _is_block(p)}, key=str)
  for rest in rests:
    out[("transformer", "resblocks") + rest] = np.stack(
        [flat[("transformer", "resblocks", i) + rest] for i in range(layers)])
  return out


def _unstack(flat: Mapping[tuple, np.ndarray], layers: int) -> dict[tuple, np.ndarray]:
  out = {}
  for p, v in flat.items():
    if _is_block(p):
      for i in range(layers):
        out[("transformer", "resblocks", i) + p[2:]] = np.asarray(v)[i]
    else:
      out[p] = v
  return out


def flax_shapes(cfg: Any) -> dict[tuple, tuple[int, ...]]:
  """The vidjax path -> shape table that :func:`to_flax` produces for ``cfg``."""
  shapes: dict[tuple, tuple[int, ...]] = {}
  for _, shape, kind, paths in _rows(cfg):
    for path, s in zip(paths, _TRANSFORMS[kind][2](shape)):
      shapes[path] = tuple(s)
  if cfg.scan_layers:
    stacked = {p: s for p, s in shapes.items() if not _is_block(p)}
    for p, s in shapes.items():
      if _is_block(p):
        stacked[("transformer", "resblocks") + p[3:]] = (cfg.layers,) + s
    shapes = stacked
  return shapes


def _mismatch_error(what: str, unexpected, missing, mismatched) -> ValueError:
  lines = [f"{what}: {len(unexpected)} unexpected, {len(missing)} missing, "
           f"{len(mismatched)} shape mismatch(es)"]
  lines += [f"  unexpected {k!s}" for k in unexpected]
  lines += [f"  missing    {k!s} {shape}" for k, shape in missing]
  lines += [f"  shape      {k!s}: given {given}, expected {want}" for k, given, want in mismatched]
  return ValueError("\n".join(lines))


def to_flax(sd: Mapping[str, np.ndarray], cfg: Any) -> dict[tuple, np.ndarray]:
  """Official state dict -> ``{vidjax path: array}`` (strict: every key, every shape)."""
  rows = _rows(cfg)
  expected = {key: shape for key, shape, _, _ in rows}
  unexpected = sorted(set(sd) - set(expected))
  missing = [(k, s) for k, s in expected.items() if k not in sd]
  mismatched = [(k, tuple(np.shape(sd[k])), s) for k, s in expected.items()
                if k in sd and tuple(np.shape(sd[k])) != s]
  if unexpected or missing or mismatched:
    raise _mismatch_error(f"official UniFormerV2 state dict vs config (width={cfg.width}, "
                          f"layers={cfg.layers}, image_size={cfg.image_size})",
                          unexpected, missing, mismatched)
  flat: dict[tuple, np.ndarray] = {}
  for key, _, kind, paths in rows:
    for path, value in zip(paths, _TRANSFORMS[kind][0](np.asarray(sd[key]))):
      flat[path] = value
  return _stack(flat, cfg.layers) if cfg.scan_layers else flat


def from_flax(flat: Mapping[tuple, np.ndarray], cfg: Any) -> dict[str, np.ndarray]:
  """``{vidjax path: array}`` (Params and BatchStats) -> official state dict; inverse of
  :func:`to_flax` (``num_batches_tracked`` written as int64 0)."""
  rows = _rows(cfg)
  expected = flax_shapes(cfg)
  flat = {tuple(p): v for p, v in flat.items()}
  unexpected = sorted(set(flat) - set(expected), key=str)
  missing = [(p, s) for p, s in expected.items() if p not in flat]
  mismatched = [(p, tuple(np.shape(flat[p])), s) for p, s in expected.items()
                if p in flat and tuple(np.shape(flat[p])) != s]
  if unexpected or missing or mismatched:
    raise _mismatch_error("vidjax UniFormerV2 weights vs config", unexpected, missing, mismatched)
  if cfg.scan_layers:
    flat = _unstack(flat, cfg.layers)
  return {key: _TRANSFORMS[kind][1]([np.asarray(flat[p]) for p in paths])
          for key, _, kind, paths in rows}
