"""UniFormerV2-L/14 on HACS (200 classes), 16x224.

Official exp ``exp/hacs/hacs_l14_16x224`` (run.sh); zoo checkpoint ``hacs/hacs_uniformerv2_l14_16x224.pyth`` (top-1 95.5).

Initialised from the K400+K710 L/14 16x224 model with a fresh head; gradient checkpointing (CHECKPOINT_NUM [1]).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from configs.uniformerv2 import common  # noqa: E402


def get_config():
  return common.get_config(
      family='untrimmed_l14',
      dataset='hacs',
      num_classes=200,
      num_frames=16,
      exp='exp/hacs/hacs_l14_16x224',
      checkpoint='hacs/hacs_uniformerv2_l14_16x224',
      top1=95.5,
      init='k400/k400_k710_uniformerv2_l14_16x224',
      total_batch=64,
      base_lr=5e-06,
      epochs=20,
      warmup_epochs=5,
      num_clips=10,
      num_crops=3)
