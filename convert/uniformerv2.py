"""Released UniFormerV2 checkpoints (``*_uniformerv2_{b16,l14}_*.pyth``) <-> vidjax.

Accepted layouts (detected from the keys):

* ``official``: the model-zoo ``.pyth`` files, a flat ``backbone.*`` state dict (SlowFast wrapper
  ``Uniformerv2.backbone``); or a training checkpoint ``{"epoch", "model_state": ..., "cfg": ...}``
  (``model_state`` is unwrapped by ``convert.io``; the pickled ``cfg`` is never executed).
  Sth-Sth models carry BatchNorm ``running_mean / running_var / num_batches_tracked`` of the local
  MHRA; they become ``nnx.BatchStat`` (the counter is kept in ``vidjax.json`` for export).
* ``mmaction2``: MMAction2's re-hosting (``{"state_dict": ..., "meta": ...}``): identical backbone,
  except the head LayerNorm ``backbone.transformer.norm.*`` (official ``proj.0``) and the head
  Linear ``cls_head.fc_cls.*`` (official ``proj.2``). Non-persistent ``data_preprocessor.*`` keys,
  if present, are dropped.
* ``official-backbone``: the same keys without the ``backbone.`` prefix (``model.backbone`` saved).

The class count comes from ``backbone.transformer.proj.2.weight``; every key must match the config's
table (``convert.uniformerv2_layout``) exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from convert import common

HEAD_KEY = "backbone.transformer.proj.2.weight"
MMACTION2_RENAMES = (("backbone.transformer.norm.", "backbone.transformer.proj.0."),
                     ("cls_head.fc_cls.", "backbone.transformer.proj.2."))


def normalise(sd: Mapping[str, np.ndarray],
              report: common.Report) -> tuple[dict[str, np.ndarray], str]:
  """Returns (official ``backbone.*`` state dict, layout name)."""
  keys = set(sd)
  if "cls_head.fc_cls.weight" in keys or "backbone.transformer.norm.weight" in keys:
    out = {}
    for k, v in sd.items():
      if k.startswith("data_preprocessor."):
        report.dropped.append(f"{k} (MMAction2 input normalisation buffer)")
        continue
      n = k
      for old, new in MMACTION2_RENAMES:
        if n.startswith(old):
          n = new + n[len(old):]
      if n != k:
        report.renamed[k] = n
      out[n] = v
    return out, "mmaction2 (backbone.transformer.norm.*, cls_head.fc_cls.*)"
  if "backbone.conv1.weight" in keys:
    return dict(sd), "official UniFormerV2 (flat backbone.* state dict)"
  if "conv1.weight" in keys and "transformer.temporal_cls_token" in keys:
    report.notes.append("added the 'backbone.' prefix of the SlowFast wrapper")
    return {"backbone." + k: v for k, v in sd.items()}, "official-backbone (no backbone. prefix)"
  if "conv1.weight" in keys or "visual.conv1.weight" in keys or any(
      k.startswith("vision_model.") for k in keys):
    raise common.ConversionError(
        "this is a CLIP checkpoint (no temporal_cls_token / global blocks): use "
        "`python -m convert clip` to initialise a UniFormerV2 from it")
  raise common.ConversionError(
      "not a UniFormerV2 checkpoint (no backbone.conv1.weight); first keys:",
      [f"{k} {common.shape_str(sd[k].shape)}" for k in sorted(keys)[:12]])


def convert(src: str, model_config: Any, *, out: str | None = None, labels: str | None = None,
            overwrite: bool = False, seed: int = 0):
  """Released UniFormerV2 file -> model (and checkpoint at ``out``). Returns (model, report)."""
  model_config = common.model_config_from(model_config, "uniformerv2")
  sd, source = common.read_source(src)
  report = common.Report(command="uniformerv2", layout="", target="", source=source.to_dict())
  sd, report.layout = normalise(sd, report)
  return common.convert_released("uniformerv2", sd, source, report.layout, report,
                                 HEAD_KEY, model_config, out=out, labels=labels,
                                 overwrite=overwrite, seed=seed, describe=describe)


def describe(cfg: Any) -> str:
  """The target model in words, e.g. for the report."""
  from convert import clip
  parts = [clip.describe_vit(cfg.width, cfg.patch_size, cfg.layers, cfg.grid ** 2 + 1),
           f"{cfg.n_layers} global blocks",
           "local MHRA" if not cfg.no_lmhra else "no local MHRA",
           "temporal downsampling" if cfg.temporal_downsample else "no temporal downsampling",
           f"{cfg.num_classes} classes"]
  return "uniformerv2 " + ", ".join(parts)


export = common.export
