"""Video-FocalNet-T on kinetics400: 400 classes, 8x224, drop-path 0.2.

Official yaml: ``TalalWasim/Video-FocalNets/configs/kinetics400/video-focalnet_tiny.yaml`` (@39eba99);
checkpoint: K400 Video-FocalNet-T (79.8 top-1, Drive id 1wsUjJbPVQd7pf-OocD9mVU8pak0gdBTP).
Init: microsoft ``focalnet_tiny_srf.pth``.
Total batch 32 = 8 x 4 GPUs (scripts/), lr scaled by batch/512.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from configs.video_focalnet import common  # noqa: E402


def get_config():
  return common.get_config(variant='tiny', dataset='kinetics400', num_classes=400,
                           gpus=4, flip=0.5)
