"""Video-FocalNet-B on activitynet: 200 classes, 8x224, drop-path 0.5.

Official yaml: ``TalalWasim/Video-FocalNets/configs/activitynet/video-focalnet_base.yaml`` (@39eba99);
checkpoint: ActivityNet-1.3 Video-FocalNet-B (89.8 top-1, Drive id 1Zku86i9Ol1gabqBqf0h1vtL-_H5gglA3).
Init: microsoft ``focalnet_base_srf.pth``.
Total batch 32 = 8 x 4 GPUs (scripts/), lr scaled by batch/512.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from configs.video_focalnet import common  # noqa: E402


def get_config():
  return common.get_config(variant='base', dataset='activitynet', num_classes=200,
                           gpus=4, flip=0.5)
