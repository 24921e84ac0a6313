"""Video-FocalNet-B on ssv2: 174 classes, 8x224, drop-path 0.5.

Official yaml: ``TalalWasim/Video-FocalNets/configs/ssv2/video-focalnet_base.yaml`` (@39eba99);
checkpoint: SSv2 Video-FocalNet-B (71.1 top-1, Drive id 1MIPLjMVDmYEY5jmJs8pRRIj4gKNVqETg, `video-focalnet_base_ssv2.pth`).
Init: microsoft ``focalnet_base_srf.pth``.
Total batch 128 = 8 x 16 GPUs (scripts/), lr scaled by batch/512.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from configs.video_focalnet import common  # noqa: E402


def get_config():
  return common.get_config(variant='base', dataset='ssv2', num_classes=174,
                           gpus=16, flip=0.0)
