"""Video-FocalNet-S on kinetics400: 400 classes, 8x224, drop-path 0.3.

Official yaml: ``TalalWasim/Video-FocalNets/configs/kinetics400/video-focalnet_small.yaml`` (commit 39eba99);
checkpoint: K400 Video-FocalNet-S (81.4 top-1, Drive id 1gO4_tluuoR4mn2bSQRNyy9_wFCnUSiQ0).
Init: microsoft ``focalnet_small_srf.pth``.
Total batch 64 = 8 x 8 GPUs (scripts/), lr scaled by batch/512.
"""

from vidjax.configs import video_focalnet


def get_config(arg=None):
  return video_focalnet.experiment(
      arg, variant='small', dataset='kinetics400', num_classes=400, gpus=8, flip=0.5,
      yaml="kinetics400/video-focalnet_small.yaml",
      checkpoint="https://drive.google.com/file/d/1gO4_tluuoR4mn2bSQRNyy9_wFCnUSiQ0/view", top1=81.4)
