"""Video-FocalNet-T on kinetics400: 400 classes, 8x224, drop-path 0.2."""

from vidjax.configs import video_focalnet


def get_config(arg=None):
  return video_focalnet.experiment(
      arg, variant='tiny', dataset='kinetics400', num_classes=400, gpus=4, flip=0.5,
      yaml="kinetics400/video-focalnet_tiny.yaml",
      checkpoint="https://drive.google.com/file/d/1wsUjJbPVQd7pf-OocD9mVU8pak0gdBTP/view", top1=79.8)
