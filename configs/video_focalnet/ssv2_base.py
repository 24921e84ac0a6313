"""Video-FocalNet-B on ssv2: 174 classes, 8x224, drop-path 0.5."""

from vidjax.configs import video_focalnet


def get_config(arg=None):
  return video_focalnet.experiment(
      arg, variant='base', dataset='ssv2', num_classes=174, gpus=16, flip=0.0,
      yaml="ssv2/video-focalnet_base.yaml",
      checkpoint="https://drive.google.com/file/d/1MIPLjMVDmYEY5jmJs8pRRIj4gKNVqETg/view", top1=71.1)
