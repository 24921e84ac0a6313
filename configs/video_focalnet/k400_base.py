"""Video-FocalNet-B on kinetics400: 400 classes, 8x224, drop-path 0.5.

Official yaml: ``TalalWasim/Video-FocalNets/configs/kinetics400/video-focalnet_base.yaml`` (commit 39eba99);
checkpoint: K400 Video-FocalNet-B (83.6 top-1, Drive id 1tc1AKKmvHN7Hzxpd53QsBIMQZmLH8ozX, `video-focalnet_base_k400.pth`).
Init: microsoft ``focalnet_base_srf.pth``.
Total batch 32 = 8 x 4 GPUs (scripts/), lr scaled by batch/512.
"""

from vidjax.configs import video_focalnet


def get_config(arg=None):
  return video_focalnet.experiment(
      arg, variant='base', dataset='kinetics400', num_classes=400, gpus=4, flip=0.5,
      yaml="kinetics400/video-focalnet_base.yaml",
      checkpoint="https://drive.google.com/file/d/1tc1AKKmvHN7Hzxpd53QsBIMQZmLH8ozX/view", top1=83.6)
