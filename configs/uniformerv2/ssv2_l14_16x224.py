"""UniFormerV2-L/14 on Something-Something V2 (174 classes), 16x224: local + global UniBlocks.

Official exp ``ssv2_l14_f16x224`` (run.sh); zoo checkpoint ``sthv2/sthv2_uniformerv2_l14_16x224.pyth`` (top-1 72.1).

Global batch 128 videos x 2 repeated augmentations; gradient checkpointing (CHECKPOINT_NUM [15]).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from configs.uniformerv2 import common  # noqa: E402


def get_config():
  return common.get_config(
      family='sth_l14',
      dataset='something_something_v2',
      num_classes=174,
      num_frames=16,
      exp='ssv2_l14_f16x224',
      checkpoint='sthv2/sthv2_uniformerv2_l14_16x224',
      top1=72.1,
      init='clip:ViT-L/14',
      total_batch=128,
      base_lr=2e-05,
      epochs=22,
      warmup_epochs=5,
      num_clips=1,
      num_crops=3,
      remat_policy='full')
