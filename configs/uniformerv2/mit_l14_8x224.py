"""UniFormerV2-L/14 on Moments in Time v1 (339 classes), 8x224.

Official exp ``exp/mit/mit_l14_f8x224`` (run.sh); zoo checkpoint ``mitv1/mit_uniformerv2_l14_8x224.pyth`` (top-1 47.0).

Initialised from the K400+K710 L/14 model with a fresh head (DELETE_SPECIAL_HEAD True).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from configs.uniformerv2 import common  # noqa: E402


def get_config():
  return common.get_config(
      family='l14',
      dataset='mit',
      num_classes=339,
      num_frames=8,
      exp='exp/mit/mit_l14_f8x224',
      checkpoint='mitv1/mit_uniformerv2_l14_8x224',
      top1=47.0,
      init='k400/k400_k710_uniformerv2_l14_8x224',
      total_batch=512,
      base_lr=1e-05,
      epochs=18,
      warmup_epochs=5,
      num_clips=4,
      num_crops=3)
