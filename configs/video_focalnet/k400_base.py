"""Video-FocalNet-B on kinetics400: 400 classes, 8x224, drop-path 0.5."""

from vidjax.configs import video_focalnet


def get_config(arg=None):
  return video_focalnet.experiment(
      arg, variant='base', dataset='kinetics400', num_classes=400, gpus=4, flip=0.5,
      yaml="kinetics400/video-focalnet_base.yaml",
      checkpoint="https://drive.google.com/file/d/1tc1AKKmvHN7Hzxpd53QsBIMQZmLH8ozX/view", top1=83.6)
