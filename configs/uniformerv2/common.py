"""Values shared by the UniFormerV2 configs (official ``run.sh`` + ``config.yaml``; run.sh wins).

Reference: ``OpenGVLab/UniFormerV2`` (SlowFast fork); see shared/reference/uniformerv2.md §2-§3.
Zoo checkpoints: ``https://pjlab-gvm-data.oss-cn-shanghai.aliyuncs.com/uniformerv2/<dir>/<file>.pyth``.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

ZOO_URL = "https://pjlab-gvm-data.oss-cn-shanghai.aliyuncs.com/uniformerv2/{}.pyth"

# Architecture families (reference §2). Every released family reads the last n_layers blocks.
FAMILIES = {
    # Kinetics / MiT: global UniBlocks only.
    "b16": dict(variant="b16", return_list=(8, 9, 10, 11), n_head=12),
    "l14": dict(variant="l14", return_list=(20, 21, 22, 23), n_head=16),
    "l14_336": dict(variant="l14_336", return_list=(20, 21, 22, 23), n_head=16),
    "frozen_l14_336": dict(variant="l14_336", return_list=(20, 21, 22, 23), n_head=16,
                           frozen=True),
    # ActivityNet / HACS: as Kinetics L/14 with drop-path.
    "untrimmed_l14": dict(variant="l14", return_list=(20, 21, 22, 23), n_head=16,
                          backbone_drop_path_rate=0.2, drop_path_rate=0.4),
    # Something-Something: local + global UniBlocks, temporal downsampling.
    "sth_b16": dict(variant="b16", return_list=tuple(range(4, 12)), n_head=12, no_lmhra=False,
                    temporal_downsample=True, backbone_drop_path_rate=0.2, drop_path_rate=0.4),
    "sth_l14": dict(variant="l14", return_list=tuple(range(8, 24)), n_head=16, no_lmhra=False,
                    temporal_downsample=True, backbone_drop_path_rate=0.2, drop_path_rate=0.4),
}


def model(family: str, *, num_classes: int, num_frames: int,
          **overrides) -> ml_collections.ConfigDict:
  """``config.model`` with every UniFormerV2 field at its released value.

  The backbone geometry (width, layers, heads, patch_size, image_size) is left to ``variant``
  (typed placeholders, so ``--config.model.width=64`` still works).
  """
  f = FAMILIES[family]
  n = len(f["return_list"])
  m = ml_collections.ConfigDict(dict(
      name="uniformerv2", variant=f["variant"],
      width=config_dict.placeholder(int), layers=config_dict.placeholder(int),
      heads=config_dict.placeholder(int), patch_size=config_dict.placeholder(int),
      image_size=config_dict.placeholder(int),
      num_classes=num_classes, num_frames=num_frames,
      temporal_downsample=False, no_lmhra=True, double_lmhra=True, dw_reduction=1.5,
      return_list=f["return_list"], n_layers=n, n_head=f["n_head"], mlp_factor=4.0,
      mlp_dropout=(0.5,) * n, cls_dropout=0.5,
      backbone_drop_path_rate=0.0, drop_path_rate=0.0, frozen=False,
      fusion="sequential", num_queries=1, use_dpe=True,
      dtype="float32", param_dtype="float32", attention_impl="xla", remat_policy="none",
      scan_layers=False))
  for k, v in {**f, **overrides}.items():
    if k not in m:
      raise KeyError(f"model.{k}: not a UniFormerV2 field")
    m[k] = v
  return m


def get_config(*, family: str, dataset: str, num_classes: int, num_frames: int, exp: str,
               checkpoint: str, top1: float | None, init: str, total_batch: int, base_lr: float,
               epochs: int, warmup_epochs: int, num_clips: int, num_crops: int,
               image_size: int = 224, **model_overrides) -> ml_collections.ConfigDict:
  """One official experiment: model, init, data, optimiser and test protocol (reference §2-§3)."""
  sth = family.startswith("sth")
  c = ml_collections.ConfigDict()
  c.model = model(family, num_classes=num_classes, num_frames=num_frames, **model_overrides)
  c.official = ml_collections.ConfigDict(dict(
      exp=exp, checkpoint=checkpoint, url=ZOO_URL.format(checkpoint) if checkpoint else "",
      top1=top1 if top1 is not None else config_dict.placeholder(float)))
  c.init = ml_collections.ConfigDict(dict(
      checkpoint=init,  # 'clip:<ViT>' = CLIP visual weights (conv1 inflated at the centre)
      delete_special_head=False))
  c.data = ml_collections.ConfigDict(dict(
      dataset=dataset, num_classes=num_classes, num_frames=num_frames, image_size=image_size,
      sampling="sparse_tsn",  # one frame per segment, random offset in training
      mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225),  # on [0, 1] (SlowFast defaults)
      rrc_area=(0.08, 1.0), rrc_ratio=(0.75, 4 / 3), flip=0.0 if sth else 0.5,
      randaugment="rand-m7-n4-mstd0.5-inc1", repeated_aug=2 if sth else 1))
  c.optim = ml_collections.ConfigDict(dict(
      optimizer="adamw", base_lr=base_lr, weight_decay=0.05, b1=0.9, b2=0.999, eps=1e-8,
      zero_wd_1d=True, warmup_epochs=warmup_epochs, warmup_start_lr=1e-6, min_lr=1e-6,
      epochs=epochs, clip_grad=20.0, total_batch_size=total_batch, label_smoothing=0.0))
  c.eval = ml_collections.ConfigDict(dict(
      num_clips=num_clips, num_crops=num_crops, test_short_side=image_size,
      score="sum_softmax"))
  return c
