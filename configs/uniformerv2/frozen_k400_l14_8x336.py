"""Frozen-backbone UniFormerV2-L/14@336 on Kinetics-400, 8x336: only the global branch trains.

Official exp ``frozen_k400_l14_f8x336`` (run.sh); zoo checkpoint ``k400/frozen_k400_uniformerv2_l14_8x336.pyth`` (top-1 86.7).

FROZEN: conv1, class/positional embeddings, ln_pre and resblocks keep their CLIP values
(uniformerv2.trainable_filter); no balance, output = proj(F).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from configs.uniformerv2 import common  # noqa: E402


def get_config():
  return common.get_config(
      family='frozen_l14_336',
      dataset='kinetics400',
      num_classes=400,
      num_frames=8,
      image_size=336,
      exp='frozen_k400_l14_f8x336',
      checkpoint='k400/frozen_k400_uniformerv2_l14_8x336',
      top1=86.7,
      init='clip:ViT-L/14@336px',
      total_batch=512,
      base_lr=0.0008,
      epochs=50,
      warmup_epochs=0,
      num_clips=3,
      num_crops=1)
