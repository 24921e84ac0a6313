"""UniFormerV2-L/14 on Kinetics-400, 8x224, fine-tuned from the K710 model.

Official exp ``exp/k400/k400+k710_l14_f8x224`` (run.sh); zoo checkpoint ``k400/k400_k710_uniformerv2_l14_8x224.pyth`` (top-1 88.8).

The K400 head keeps rows [:400] of the K710 head (DELETE_SPECIAL_HEAD True in run.sh: fresh head).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from configs.uniformerv2 import common  # noqa: E402


def get_config():
  return common.get_config(
      family='l14',
      dataset='kinetics400',
      num_classes=400,
      num_frames=8,
      exp='exp/k400/k400+k710_l14_f8x224',
      checkpoint='k400/k400_k710_uniformerv2_l14_8x224',
      top1=88.8,
      init='k710/k710_uniformerv2_l14_8x224',
      total_batch=256,
      base_lr=1.5e-06,
      epochs=5,
      warmup_epochs=1,
      num_clips=4,
      num_crops=3)
