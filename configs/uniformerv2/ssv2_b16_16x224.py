"""UniFormerV2-B/16 on Something-Something V2 (174 classes), 16x224: local + global UniBlocks.

Official exp ``ssv2_b16_f16x224`` (run.sh); zoo checkpoint ``sthv2/sthv2_uniformerv2_b16_16x224.pyth`` (top-1 69.5).

Global batch 128 videos x 2 repeated augmentations = 256 clips; no horizontal flip.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from configs.uniformerv2 import common  # noqa: E402


def get_config():
  return common.get_config(
      family='sth_b16',
      dataset='something_something_v2',
      num_classes=174,
      num_frames=16,
      exp='ssv2_b16_f16x224',
      checkpoint='sthv2/sthv2_uniformerv2_b16_16x224',
      top1=69.5,
      init='clip:ViT-B/16',
      total_batch=128,
      base_lr=4e-05,
      epochs=22,
      warmup_epochs=5,
      num_clips=1,
      num_crops=3)
