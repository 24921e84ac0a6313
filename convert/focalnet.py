"""ImageNet FocalNet (T/S/B, srf) -> Video-FocalNet initialisation, as the official ``main.py``.

Accepted layouts (detected from the keys):

* ``microsoft``: ``focalnet_{tiny,small,base}_srf.pth`` from microsoft/FocalNet
  (``{"model": state_dict}``; ``patch_embed.*``, ``layers.i.downsample`` at the end of stage i,
  Linear weights 2-D, ``head.*``).
* ``timm``: timm ``focalnet_*_srf`` weights (``.pth`` / ``.bin`` / ``.safetensors``): ``stem.*``,
  ``layers.i.downsample`` at the *start* of stage i (shifted by one), 1x1-conv shaped Linear
  weights ``[o, i, 1, 1]`` for ``f``, ``proj``, ``mlp.fc1/fc2``, ``head.fc.*``. Mapped back to the
  microsoft names (the inverse of timm's ``checkpoint_filter_fn``).

Semantics: every spatial key (stem, LayerNorms, ``f``, ``h``, ``focal_layers``, ``proj``, ``mlp``,
downsamples, final ``norm``) is copied unchanged; the temporal keys (``f_temporal``,
``h_temporal``, ``focal_layers_temporal``) keep the fresh init; the ImageNet head is dropped and the
video head re-drawn as the official code does: weight **and bias** ``trunc_normal_(std=.02)``
(timm's truncation at +-2 absolute, i.e. effectively N(0, .02^2)). With ``tubelet_size > 1`` the
stem kernel is repeated over time and divided by the tubelet size. ``lrf`` weights (3 focal levels,
kernels 3/5/7, ``f`` with 2C+4 rows) do not fit the srf video models and are refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from convert import common

_TIMM_FLAT = re.compile(r"(modulation\.(f|proj)|mlp\.fc[12])\.weight$")
VARIANT_NAMES = {((2, 2, 6, 2), 96): "FocalNet-T", ((2, 2, 18, 2), 96): "FocalNet-S",
                 ((2, 2, 18, 2), 128): "FocalNet-B"}


def timm_to_microsoft(sd: Mapping[str, np.ndarray],
                      renamed: dict[str, str] | None = None) -> dict[str, np.ndarray]:
  """timm focalnet keys -> microsoft keys (inverse of timm's ``checkpoint_filter_fn``)."""
  out = {}
  for k, v in sd.items():
    n = k
    if n.startswith("stem."):
      n = "patch_embed." + n[len("stem."):]
    n = re.sub(r"^layers\.(\d+)\.downsample\.",
               lambda m: f"layers.{int(m.group(1)) - 1}.downsample.", n)
    n = re.sub(r"\.ls([12])\.gamma$", r".gamma_\1", n)
    if n.startswith("head.fc."):
      n = "head." + n[len("head.fc."):]
    if _TIMM_FLAT.search(n) and v.ndim == 4 and v.shape[2:] == (1, 1):
      v = v[:, :, 0, 0]
    out[n] = v
    if renamed is not None and n != k:
      renamed[k] = n
  return out


def detect_and_normalise(sd: Mapping[str, np.ndarray],
                         report: common.Report) -> tuple[dict[str, np.ndarray], str]:
  """Returns (microsoft-layout image FocalNet state dict, layout name)."""
  keys = set(sd)
  if any("_temporal" in k for k in keys):
    raise common.ConversionError(
        "this is a Video-FocalNet checkpoint (it has *_temporal* keys), not an ImageNet FocalNet: "
        "use `python -m convert video-focalnet`")
  if any(k.startswith("backbone.") or k.startswith("visual.") or k == "conv1.weight"
         for k in keys):
    raise common.ConversionError("this is a CLIP / UniFormerV2 checkpoint, not FocalNet: use "
                                 "`python -m convert clip` or `uniformerv2`")
  if "stem.proj.weight" in keys:
    return (timm_to_microsoft(sd, report.renamed),
            "timm (stem.*, downsample at stage start, 1x1-conv linears, head.fc.*)")
  if "patch_embed.proj.weight" in keys:
    return dict(sd), "microsoft (patch_embed.*, downsample at stage end, head.*)"
  raise common.ConversionError(
      "unrecognised checkpoint: expected FocalNet keys (patch_embed.proj.weight or "
      "stem.proj.weight); first keys:",
      [f"{k} {common.shape_str(sd[k].shape)}" for k in sorted(keys)[:12]])


def describe(sd: Mapping[str, Any]) -> tuple[tuple[int, ...], int, tuple[int, ...], str]:
  """(depths, embed_dim, focal levels per stage, words) of a microsoft-layout key -> shape map."""
  shape = lambda k: tuple(sd[k]) if isinstance(sd[k], tuple) else tuple(np.shape(sd[k]))
  stages = sorted({int(m.group(1)) for k in sd if (m := re.match(r"layers\.(\d+)\.blocks\.", k))})
  depths = tuple(1 + max(int(m.group(1)) for k in sd
                         if (m := re.match(rf"layers\.{i}\.blocks\.(\d+)\.", k))) for i in stages)
  embed = shape("patch_embed.proj.weight")[0]
  levels = []
  for i in stages:
    rows, c = shape(f"layers.{i}.blocks.0.modulation.f.weight")[0], embed * 2**i
    levels.append(rows - 2 * c - 1)
  levels = tuple(levels)
  kind = "srf" if set(levels) == {2} else ("lrf" if set(levels) == {3} else f"levels {levels}")
  name = VARIANT_NAMES.get((depths, embed), "FocalNet")
  return depths, embed, levels, f"{name}-{kind} (depths {list(depths)}, embed_dim {embed}, " \
      f"focal levels {list(levels)})"


def _trunc_normal(rng: np.random.Generator, shape, std: float = 0.02) -> np.ndarray:
  """timm ``trunc_normal_(std)``: N(0, std^2) truncated to [-2, 2] (absolute bounds)."""
  x = rng.standard_normal(shape) * std
  bad = np.abs(x) > 2.0
  while bad.any():
    x[bad] = rng.standard_normal(int(bad.sum())) * std
    bad = np.abs(x) > 2.0
  return x.astype(np.float32)


def convert(src: str, model_config: Any, *, out: str | None = None, labels: str | None = None,
            seed: int = 0, overwrite: bool = False):
  """ImageNet FocalNet file -> Video-FocalNet model (and checkpoint). Returns (model, report)."""
  model_config = common.model_config_from(model_config, "video_focalnet")
  sd, source = common.read_source(src)
  report = common.Report(command="focalnet", layout="", target="", source=source.to_dict())
  image, report.layout = detect_and_normalise(sd, report)

  _, cfg = common.architecture(model_config)
  layout = common.layout_module("video_focalnet")
  image_shapes = {k: tuple(v) for k, v in layout.image_focalnet_shapes(cfg).items()}
  stem = image_shapes["patch_embed.proj.weight"]
  if len(stem) == 5:   # tubelet stem (C, 3, ts, p, p): the ImageNet kernel is 2-D, inflated below
    image_shapes["patch_embed.proj.weight"] = stem[:2] + stem[3:]
  _, _, want_levels, want = describe(image_shapes)
  report.target = (f"video_focalnet ({want.split(' (')[0].replace('FocalNet', 'Video-FocalNet')}, "
                   f"design {cfg.design!r}, {cfg.num_classes} classes)")
  try:
    have_depths, have_embed, have_levels, have = describe(image)
  except (KeyError, ValueError):   # incomplete file: the strict comparison below names the keys
    have_depths, have_embed, have_levels, have = tuple(cfg.depths), cfg.embed_dim, want_levels, ""
  if have_levels != want_levels:
    hint = ""
    if set(have_levels) == {3} and set(want_levels) == {2}:
      hint = (" This is an lrf checkpoint (3 focal levels, kernels 3/5/7; f.weight has 2C+4 "
              "rows); every released Video-FocalNet is srf (2 levels, kernels 3/5) and the third "
              "level has nowhere to go: use focalnet_{tiny,small,base}_srf.pth.")
    raise common.ConversionError(
        f"checkpoint is {have} but the config builds {want} (model.focal_levels="
        f"{tuple(cfg.focal_levels)}).{hint}")
  if (have_depths, have_embed) != (tuple(cfg.depths), cfg.embed_dim):
    raise common.ConversionError(
        f"checkpoint is {have} but the config builds {want} (model.variant={cfg.variant!r}): "
        "pick configs/video_focalnet/*_{tiny,small,base}.py to match")

  # The ImageNet head: any class count, the right width; dropped.
  head = {k: v for k, v in image.items() if k.startswith("head.")}
  width = image_shapes["head.weight"][1]
  given = {k: v.shape for k, v in image.items() if not k.startswith("head.")}
  given.update({"head.weight": (image_shapes["head.weight"][0], head["head.weight"].shape[1])}
               if "head.weight" in head else {})
  given.update({"head.bias": image_shapes["head.bias"]} if "head.bias" in head else {})
  common.strict_compare(given, image_shapes, f"{report.layout} -> image FocalNet table",
                        hint="(head.* may have any class count; its width must be "
                        f"{width})")
  for k, v in head.items():
    report.dropped.append(f"{k} {common.shape_str(v.shape)} (ImageNet head)")

  model, cfg, layout, official = common.fresh_model(model_config, seed)
  for k, v in image.items():
    if k.startswith("head."):
      continue
    target = official[k].shape
    if k == "patch_embed.proj.weight" and len(target) == 5 and v.ndim == 4:
      ts = target[2]
      official[k] = np.repeat(v[:, :, None] / ts, ts, axis=2).astype(np.float32)
      report.inflated.append(f"{k} {common.shape_str(v.shape)} -> {common.shape_str(target)} "
                             f"(repeated over {ts} frames, divided by {ts})")
      continue
    if tuple(v.shape) != tuple(target):
      raise common.ConversionError(f"{k}: checkpoint {common.shape_str(v.shape)} vs model "
                                   f"{common.shape_str(target)}; nothing was written")
    official[k] = np.asarray(v, np.float32)
    report.copied.append(k)

  rng = np.random.default_rng(seed)
  for k in ("head.weight", "head.bias"):
    official[k] = _trunc_normal(rng, official[k].shape)
    report.reinitialised.append(f"{k} {common.shape_str(official[k].shape)} "
                                "trunc_normal(std=.02), bias too, as the official main.py")
  common.finish(model, cfg, layout, official, model_config, report, out, labels, overwrite,
                written=set(image) | {"head.weight", "head.bias"})
  return model, report
