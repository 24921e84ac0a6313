"""UniFormerV2-L/14 post-pretrained on Kinetics-710, 8x224, from CLIP ViT-L/14.

Official exp ``exp/k710/k710_l14_f8x224`` (run.sh); zoo checkpoint ``k710/k710_uniformerv2_l14_8x224.pyth``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from configs.uniformerv2 import common  # noqa: E402


def get_config():
  return common.get_config(
      family='l14',
      dataset='kinetics710',
      num_classes=710,
      num_frames=8,
      exp='exp/k710/k710_l14_f8x224',
      checkpoint='k710/k710_uniformerv2_l14_8x224',
      top1=None,
      init='clip:ViT-L/14',
      total_batch=512,
      base_lr=1e-05,
      epochs=40,
      warmup_epochs=5,
      num_clips=4,
      num_crops=3)
