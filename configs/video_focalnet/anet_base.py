"""Video-FocalNet-B on activitynet: 200 classes, 8x224, drop-path 0.5.

Official yaml: ``TalalWasim/Video-FocalNets/configs/activitynet/video-focalnet_base.yaml`` (commit 39eba99);
checkpoint: ActivityNet-1.3 Video-FocalNet-B (89.8 top-1, Drive id 1Zku86i9Ol1gabqBqf0h1vtL-_H5gglA3).
Init: microsoft ``focalnet_base_srf.pth``.
Total batch 32 = 8 x 4 GPUs (scripts/), lr scaled by batch/512.
"""

from vidjax.configs import video_focalnet


def get_config(arg=None):
  return video_focalnet.experiment(
      arg, variant='base', dataset='activitynet', num_classes=200, gpus=4, flip=0.5,
      yaml="activitynet/video-focalnet_base.yaml",
      checkpoint="https://drive.google.com/file/d/1Zku86i9Ol1gabqBqf0h1vtL/view", top1=89.8)
