"""Video-FocalNet-T on kinetics400: 400 classes, 8x224, drop-path 0.2.

Official yaml: ``TalalWasim/Video-FocalNets/configs/kinetics400/video-focalnet_tiny.yaml`` (commit 39eba99);
checkpoint: K400 Video-FocalNet-T (79.8 top-1, Drive id 1wsUjJbPVQd7pf-OocD9mVU8pak0gdBTP).
Init: microsoft ``focalnet_tiny_srf.pth``.
Total batch 32 = 8 x 4 GPUs (scripts/), lr scaled by batch/512.
"""

from vidjax.configs import video_focalnet


def get_config(arg=None):
  return video_focalnet.experiment(
      arg, variant='tiny', dataset='kinetics400', num_classes=400, gpus=4, flip=0.5,
      yaml="kinetics400/video-focalnet_tiny.yaml",
      checkpoint="https://drive.google.com/file/d/1wsUjJbPVQd7pf/view", top1=79.8)
