"""UniFormerV2-L/14@336 on Kinetics-400, 8x336.

Official exp ``exp/k400/k400+k710_l14_f32x336`` (run.sh); zoo checkpoint ``k400/k400_k710_uniformerv2_l14_32x336.pyth`` (top-1 89.7).

The zoo's K400 L/14@336 models are 32 (89.7) and 64 (90.0) frames; no parameter depends on T,
so the same weights run at 8 frames (set num_frames=32 for the released protocol).
The recipe below is the 32x336 run (K710 init, gradient checkpointing on all 24 blocks).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from configs.uniformerv2 import common  # noqa: E402


def get_config():
  return common.get_config(
      family='l14_336',
      dataset='kinetics400',
      num_classes=400,
      num_frames=8,
      image_size=336,
      exp='exp/k400/k400+k710_l14_f32x336',
      checkpoint='k400/k400_k710_uniformerv2_l14_32x336',
      top1=89.7,
      init='k710/k710_uniformerv2_l14_8x336',
      total_batch=128,
      base_lr=1.5e-06,
      epochs=5,
      warmup_epochs=1,
      num_clips=4,
      num_crops=3,
      remat_policy='full')
