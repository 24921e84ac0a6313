"""Video-FocalNet-B on activitynet: 200 classes, 8x224, drop-path 0.5."""

from vidjax.configs import video_focalnet


def get_config(arg=None):
  return video_focalnet.experiment(
      arg, variant='base', dataset='activitynet', num_classes=200, gpus=4, flip=0.5,
      yaml="activitynet/video-focalnet_base.yaml",
      checkpoint="https://drive.google.com/file/d/1Zku86i9Ol1gabqBqf0h1vtL-_H5gglA3/view", top1=89.8)
