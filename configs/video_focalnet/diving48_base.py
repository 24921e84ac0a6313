"""Video-FocalNet-B on diving48: 48 classes, 8x224, drop-path 0.5.

Official yaml: ``TalalWasim/Video-FocalNets/configs/diving48/video-focalnet_base.yaml`` (@39eba99);
checkpoint: Diving-48 (V2 splits) Video-FocalNet-B (90.8 top-1, Drive id 1MMZeDucN1cfC5MiTGIft8xNfo5358dA2).
Init: microsoft ``focalnet_base_srf.pth``.
Total batch 32 = 8 x 4 GPUs (scripts/), lr scaled by batch/512.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from configs.video_focalnet import common  # noqa: E402


def get_config():
  return common.get_config(variant='base', dataset='diving48', num_classes=48,
                           gpus=4, flip=0.5)
