"""UniFormerV2-B/16 on Kinetics-600, 8x224, from CLIP ViT-B/16.

Official exp ``exp/k600/k600_b16_f8x224`` (run.sh); zoo checkpoint ``k600/k600_uniformerv2_b16_8x224.pyth`` (top-1 85.0).

The K710-initialised variant (exp k600+k710_b16_f8x224, zoo k600/k600_k710_uniformerv2_b16_8x224)
uses the same model with lr 2e-6, 5 epochs, 1 warmup epoch.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from configs.uniformerv2 import common  # noqa: E402


def get_config():
  return common.get_config(
      family='b16',
      dataset='kinetics600',
      num_classes=600,
      num_frames=8,
      exp='exp/k600/k600_b16_f8x224',
      checkpoint='k600/k600_uniformerv2_b16_8x224',
      top1=85.0,
      init='clip:ViT-B/16',
      total_batch=256,
      base_lr=1e-05,
      epochs=55,
      warmup_epochs=5,
      num_clips=4,
      num_crops=3)
