"""UniFormerV2-B/16 on Moments in Time v1 (339 classes), 8x224.

Official exp ``exp/mit/mit_b16_f8x224`` (run.sh); zoo checkpoint ``mitv1/mit_uniformerv2_b16_8x224.pyth`` (top-1 42.6).

Initialised from the K400+K710 B/16 model with a fresh head (DELETE_SPECIAL_HEAD True).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from configs.uniformerv2 import common  # noqa: E402


def get_config():
  return common.get_config(
      family='b16',
      dataset='mit',
      num_classes=339,
      num_frames=8,
      exp='exp/mit/mit_b16_f8x224',
      checkpoint='mitv1/mit_uniformerv2_b16_8x224',
      top1=42.6,
      init='k400/k400_k710_uniformerv2_b16_8x224',
      total_batch=512,
      base_lr=2e-05,
      epochs=24,
      warmup_epochs=5,
      num_clips=4,
      num_crops=3)
