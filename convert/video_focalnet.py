"""Released Video-FocalNet checkpoints (``video-focalnet_{tiny,small,base}_*.pth``) <-> vidjax.

Accepted layout: ``official`` -- a torch pickle ``{"model": state_dict, ...}`` as the official
``utils.save_checkpoint`` writes it (also a bare state dict, or ``.safetensors``). Such files may
also carry ``optimizer``, ``lr_scheduler``, ``epoch`` and a pickled yacs ``config``: only the
tensors under ``model`` are loaded; the config object is replaced by an inert placeholder by the
restricted unpickler (``convert.io``), never executed. The class count comes from ``head.weight``;
every key must match the config's table (``convert.video_focalnet_layout``) exactly.

``export`` writes a vidjax checkpoint back as ``{"model": state_dict}`` (.pth) or a flat
``.safetensors`` that the official ``videofocalnet.py`` loads with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from convert import common

HEAD_KEY = "head.weight"


def detect(sd: Mapping[str, np.ndarray]) -> str:
  keys = set(sd)
  if "patch_embed.proj.weight" not in keys and "stem.proj.weight" not in keys:
    raise common.ConversionError(
        "not a Video-FocalNet checkpoint (no patch_embed.proj.weight); first keys:",
        [f"{k} {common.shape_str(sd[k].shape)}" for k in sorted(keys)[:12]])
  if not any("_temporal" in k for k in keys):
    raise common.ConversionError(
        "this is an image FocalNet checkpoint (no *_temporal* keys): use `python -m convert "
        "focalnet` to initialise a Video-FocalNet from it")
  return "official Video-FocalNet state dict (patch_embed.*, *_temporal*, head.*)"


def convert(src: str, model_config: Any, *, out: str | None = None, labels: str | None = None,
            overwrite: bool = False, seed: int = 0):
  """Released Video-FocalNet file -> model (and checkpoint at ``out``). Returns (model, report)."""
  model_config = common.model_config_from(model_config, "video_focalnet")
  sd, source = common.read_source(src)
  report = common.Report(command="video-focalnet", layout=detect(sd), target="",
                         source=source.to_dict())
  return common.convert_released("video_focalnet", sd, source, report.layout,
                                 report, HEAD_KEY, model_config, out=out, labels=labels,
                                 overwrite=overwrite, seed=seed, describe=describe)


def describe(cfg: Any) -> str:
  """The target model in words, e.g. for the report."""
  return (f"video_focalnet {cfg.variant} (depths {list(cfg.depths)}, embed_dim {cfg.embed_dim}, "
          f"focal levels {list(cfg.focal_levels)}, design {cfg.design!r}, "
          f"{cfg.num_classes} classes)")


export = common.export
