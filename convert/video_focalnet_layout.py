"""Key/shape table of the official Video-FocalNet (and microsoft image-FocalNet) state dicts.

numpy only (no torch): the converters read the PyTorch files and call :func:`to_flax`.

Official key (``TalalWasim/Video-FocalNets`` ``videofocalnet.py``; C = embed_dim * 2**i at stage
i, L = focal level, k_l = focal_factor * l + focal_window)  -> vidjax path, transform

    patch_embed.proj.weight  [C0,3,4,4] ([C0,3,ts,4,4] tubelets)   patch_embed/proj/kernel  OIHW->HWIO
    patch_embed.proj.bias    [C0]                                  patch_embed/proj/bias    copy
    patch_embed.norm.{weight,bias} [C0]                            patch_embed/norm/{scale,bias}
    layers.i.blocks.j.norm1.{weight,bias} [C]                      layers/i/blocks/j/norm1/{scale,bias}
    layers.i.blocks.j.modulation.f.weight [2C+L+1,C]               .../modulation/f/kernel  .T
    layers.i.blocks.j.modulation.h.weight [C,C,1,1]                .../modulation/h/kernel  w[:,:,0,0].T
    layers.i.blocks.j.modulation.proj.weight [C,C]                 .../modulation/proj/kernel  .T
    layers.i.blocks.j.modulation.focal_layers.l.0.weight [C,1,k,k] .../focal_layers/l/kernel  [k,k,1,C]
    layers.i.blocks.j.modulation.f_temporal.weight [C+L+1,C]       .../f_temporal/kernel  .T
    layers.i.blocks.j.modulation.h_temporal.weight [C,C,1]         .../h_temporal/kernel  w[:,:,0].T
    layers.i.blocks.j.modulation.focal_layers_temporal.l.0.weight [C,C,k]
                                                                   .../focal_layers_temporal/l/kernel [k,C,C]
    layers.i.blocks.j.modulation.{f,h,proj,f_temporal,h_temporal}.bias   .../bias  copy
    layers.i.blocks.j.modulation.ln.{weight,bias} [C] (use_postln_in_modulation)  .../ln/{scale,bias}
    layers.i.blocks.j.gamma_{1,2} [C] (use_layerscale)              .../gamma_{1,2}  copy
    layers.i.blocks.j.norm2.{weight,bias} [C]                      .../norm2/{scale,bias}
    layers.i.blocks.j.mlp.fc{1,2}.weight [4C,C]/[C,4C] (+bias)      .../mlp/fc{1,2}/kernel  .T
    layers.i.downsample.proj.weight [2C,C,2,2] (+bias), i < 3      layers/i/downsample/proj/kernel  OIHW->HWIO
    layers.i.downsample.norm.{weight,bias} [2C]                    layers/i/downsample/norm/{scale,bias}
    norm.{weight,bias} [C3]                                        norm/{scale,bias}
    head.weight [num_classes,C3], head.bias                        head/kernel (.T), head/bias

Video-FocalNet-T with a 400-class head: 284 keys (548 for S/B). The microsoft image-FocalNet table
is the same without the ``*_temporal*`` keys (212 keys for FocalNet-T, 1000-class head); it maps
onto a ``design='spatial_only'`` model. With ``scan_layers=True`` the per-block arrays of a stage
are stacked on a new leading axis and the block index disappears from the vidjax path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

# name -> (torch -> flax, flax -> torch)
_TRANSFORMS: dict[str, tuple[Callable, Callable]] = {
    "copy": (lambda w: w, lambda w: w),
    "linear": (lambda w: w.T, lambda w: w.T),
    "pointwise2d": (lambda w: w[:, :, 0, 0].T, lambda w: w.T[:, :, None, None]),
    "pointwise1d": (lambda w: w[:, :, 0].T, lambda w: w.T[:, :, None]),
    "conv2d": (lambda w: w.transpose(2, 3, 1, 0), lambda w: w.transpose(3, 2, 0, 1)),
    "conv1d": (lambda w: w.transpose(2, 1, 0), lambda w: w.transpose(2, 1, 0)),
    "conv3d": (lambda w: w.transpose(2, 3, 4, 1, 0), lambda w: w.transpose(4, 3, 0, 1, 2)),
}

# (torch key, torch shape, flax path, transform, block index or None, stage or None)
_Row = tuple[str, tuple[int, ...], tuple[Any, ...], str, Any, Any]


def _get(cfg: Any, name: str) -> Any:
  return cfg[name] if isinstance(cfg, Mapping) else getattr(cfg, name)


def _rows(cfg: Any, *, temporal: bool, num_classes: int) -> list[_Row]:
  """The official table for ``cfg`` (a vidjax ``Config``), in state-dict order."""
  depths, e = tuple(_get(cfg, "depths")), int(_get(cfg, "embed_dim"))
  levels, windows = _get(cfg, "focal_levels"), _get(cfg, "focal_windows")
  factor, ts = int(_get(cfg, "focal_factor")), int(_get(cfg, "tubelet_size"))
  p = int(_get(cfg, "patch_size"))
  conv_embed = bool(_get(cfg, "use_conv_embed"))
  rows: list[_Row] = []

  def ln(key, path, c, blk=None, stage=None):
    rows.append((f"{key}.weight", (c,), path + ("scale",), "copy", blk, stage))
    rows.append((f"{key}.bias", (c,), path + ("bias",), "copy", blk, stage))

  def lin(key, path, cin, cout, blk=None, stage=None, kind="linear", wshape=None):
    rows.append((f"{key}.weight", wshape or (cout, cin), path + ("kernel",), kind, blk, stage))
    rows.append((f"{key}.bias", (cout,), path + ("bias",), "copy", blk, stage))

  k0 = 7 if conv_embed else p
  if ts > 1:
    lin("patch_embed.proj", ("patch_embed", "proj"), 3, e, kind="conv3d",
        wshape=(e, 3, ts, k0, k0))
  else:
    lin("patch_embed.proj", ("patch_embed", "proj"), 3, e, kind="conv2d", wshape=(e, 3, k0, k0))
  ln("patch_embed.norm", ("patch_embed", "norm"), e)
  for i, depth in enumerate(depths):
    c, lvl = e * 2**i, int(levels[i])
    ks = [factor * l + int(windows[i]) for l in range(lvl)]
    for j in range(depth):
      key, path = f"layers.{i}.blocks.{j}", ("layers", i, "blocks")
      if _get(cfg, "use_layerscale"):
        for g in ("gamma_1", "gamma_2"):
          rows.append((f"{key}.{g}", (c,), path + (g,), "copy", j, i))
      ln(f"{key}.norm1", path + ("norm1",), c, j, i)
      mod, mpath = f"{key}.modulation", path + ("modulation",)
      lin(f"{mod}.f", mpath + ("f",), c, 2 * c + lvl + 1, j, i)
      lin(f"{mod}.h", mpath + ("h",), c, c, j, i, kind="pointwise2d", wshape=(c, c, 1, 1))
      lin(f"{mod}.proj", mpath + ("proj",), c, c, j, i)
      for l, k in enumerate(ks):
        rows.append((f"{mod}.focal_layers.{l}.0.weight", (c, 1, k, k),
                     mpath + ("focal_layers", l, "kernel"), "conv2d", j, i))
      if _get(cfg, "use_postln_in_modulation"):
        ln(f"{mod}.ln", mpath + ("ln",), c, j, i)
      if temporal:
        lin(f"{mod}.f_temporal", mpath + ("f_temporal",), c, c + lvl + 1, j, i)
        lin(f"{mod}.h_temporal", mpath + ("h_temporal",), c, c, j, i, kind="pointwise1d",
            wshape=(c, c, 1))
        for l, k in enumerate(ks):
          rows.append((f"{mod}.focal_layers_temporal.{l}.0.weight", (c, c, k),
                       mpath + ("focal_layers_temporal", l, "kernel"), "conv1d", j, i))
      ln(f"{key}.norm2", path + ("norm2",), c, j, i)
      hidden = int(c * float(_get(cfg, "mlp_ratio")))
      lin(f"{key}.mlp.fc1", path + ("mlp", "fc1"), c, hidden, j, i)
      lin(f"{key}.mlp.fc2", path + ("mlp", "fc2"), hidden, c, j, i)
    if i < len(depths) - 1:
      kd = 3 if conv_embed else 2
      lin(f"layers.{i}.downsample.proj", ("layers", i, "downsample", "proj"), c, 2 * c,
          kind="conv2d", wshape=(2 * c, c, kd, kd))
      ln(f"layers.{i}.downsample.norm", ("layers", i, "downsample", "norm"), 2 * c)
  c_last = e * 2 ** (len(depths) - 1)
  ln("norm", ("norm",), c_last)
  lin("head", ("head",), c_last, num_classes)
  return rows


def _check_design(cfg: Any) -> bool:
  """True for the video table, False for the image table; raises for unmapped designs."""
  design, fusion = _get(cfg, "design"), _get(cfg, "modulator_fusion")
  if design == "spatio_temporal" and fusion == "multiply":
    return True
  if design == "spatial_only":
    return False
  raise ValueError(
      f"model.design={design!r}, model.modulator_fusion={fusion!r}: only the released design "
      "('spatio_temporal' with 'multiply' fusion) and the image-FocalNet key set "
      "('spatial_only') have an official layout")


def official_shapes(cfg: Any) -> dict[str, tuple[int, ...]]:
  """Every key of the official Video-FocalNet state_dict for ``cfg`` with its shape."""
  return {k: s for k, s, *_ in _rows(cfg, temporal=True, num_classes=_get(cfg, "num_classes"))}


def image_focalnet_shapes(cfg: Any, num_classes: int = 1000) -> dict[str, tuple[int, ...]]:
  """The microsoft image-FocalNet key table (``checkpoint['model']``) for ``cfg``'s widths."""
  return {k: s for k, s, *_ in _rows(cfg, temporal=False, num_classes=num_classes)}


def _table(cfg: Any) -> list[_Row]:
  return _rows(cfg, temporal=_check_design(cfg), num_classes=_get(cfg, "num_classes"))


def to_flax(sd: Mapping[str, Any], cfg: Any) -> dict[tuple[Any, ...], np.ndarray]:
  """Official state dict -> flat vidjax params ``{path: array}`` (strict; stacked if scanned).

  The paths are those of ``nnx.to_flat_state(nnx.state(model, nnx.Any(nnx.Param,
  nnx.BatchStat)))``. All unexpected, missing and mis-shaped keys are reported in one error.
  """
  rows = _table(cfg)
  expected = {k for k, *_ in rows}
  unexpected = sorted(set(sd) - expected)
  missing = [k for k, *_ in rows if k not in sd]
  mismatched = [f"{k}: expected {s}, found {tuple(np.shape(sd[k]))}" for k, s, *_ in rows
                if k in sd and tuple(np.shape(sd[k])) != s]
  if unexpected or missing or mismatched:
    parts = []
    if unexpected:
      parts.append(f"unexpected keys {unexpected}")
    if missing:
      parts.append(f"missing keys {missing}")
    if mismatched:
      parts.append(f"shape mismatches [{'; '.join(mismatched)}]")
    raise ValueError("Video-FocalNet state dict does not match the config: " + "; ".join(parts))
  scan = bool(_get(cfg, "scan_layers"))
  out: dict[tuple[Any, ...], np.ndarray] = {}
  stacks: dict[tuple[Any, ...], list[np.ndarray]] = {}
  for key, _, path, kind, blk, _stage in rows:
    w = _TRANSFORMS[kind][0](np.asarray(sd[key]))
    if blk is None:
      out[path] = w
    elif scan:
      stacks.setdefault(path, []).append(w)
    else:
      out[path[:3] + (blk,) + path[3:]] = w
  for path, ws in stacks.items():
    out[path] = np.stack(ws)
  return out


def from_flax(flat: Mapping[tuple[Any, ...], Any], cfg: Any) -> dict[str, np.ndarray]:
  """Flat vidjax params -> official state dict; the exact inverse of :func:`to_flax`."""
  rows = _table(cfg)
  scan = bool(_get(cfg, "scan_layers"))

  def src(path, blk):
    return path if (blk is None or scan) else path[:3] + (blk,) + path[3:]

  expected = {src(p, b) for _, _, p, _, b, _ in rows}
  unexpected = sorted(map(str, set(flat) - expected))
  missing = sorted({str(p) for p in expected if p not in flat})
  if unexpected or missing:
    raise ValueError(f"vidjax params do not match the config: unexpected paths {unexpected}; "
                     f"missing paths {missing}")
  sd: dict[str, np.ndarray] = {}
  for key, shape, path, kind, blk, _ in rows:
    w = np.asarray(flat[src(path, blk)])
    if blk is not None and scan:
      w = w[blk]
    w = _TRANSFORMS[kind][1](w)
    if w.shape != shape:
      raise ValueError(f"{key}: expected {shape}, found {w.shape} (from {src(path, blk)})")
    sd[key] = np.ascontiguousarray(w)
  return sd
