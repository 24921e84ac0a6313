"""Video-FocalNet-S on kinetics400: 400 classes, 8x224, drop-path 0.3."""

from vidjax.configs import video_focalnet


def get_config(arg=None):
  return video_focalnet.experiment(
      arg, variant='small', dataset='kinetics400', num_classes=400, gpus=8, flip=0.5,
      yaml="kinetics400/video-focalnet_small.yaml",
      checkpoint="https://drive.google.com/file/d/1gO4_tluuoR4mn2bSQRNyy9_wFCnUSiQ0/view", top1=81.4)
