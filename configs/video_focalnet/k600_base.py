"""Video-FocalNet-B on kinetics600: 600 classes, 8x224, drop-path 0.5."""

from vidjax.configs import video_focalnet


def get_config(arg=None):
  return video_focalnet.experiment(
      arg, variant='base', dataset='kinetics600', num_classes=600, gpus=4, flip=0.5,
      yaml="kinetics600/video-focalnet_base.yaml",
      checkpoint="https://drive.google.com/file/d/16u1dij3dde0KmaajiB5lAFy8FaRvQDmS/view", top1=86.7)
