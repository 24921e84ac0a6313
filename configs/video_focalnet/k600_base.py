"""Video-FocalNet-B on kinetics600: 600 classes, 8x224, drop-path 0.5.

Official yaml: ``TalalWasim/Video-FocalNets/configs/kinetics600/video-focalnet_base.yaml`` (commit 39eba99);
checkpoint: K600 Video-FocalNet-B (86.7 top-1, Drive id 16u1dij3dde0KmaajiB5lAFy8FaRvQDmS).
Init: microsoft ``focalnet_base_srf.pth``.
Total batch 32 = 8 x 4 GPUs (scripts/), lr scaled by batch/512.
"""

from vidjax.configs import video_focalnet


def get_config(arg=None):
  return video_focalnet.experiment(
      arg, variant='base', dataset='kinetics600', num_classes=600, gpus=4, flip=0.5,
      yaml="kinetics600/video-focalnet_base.yaml",
      checkpoint="https://drive.google.com/file/d/16u1dij3dde0KmaajiB5lAFy8FaRvQDmS/view", top1=86.7)
