"""Video-FocalNet-B on diving48: 48 classes, 8x224, drop-path 0.5."""

from vidjax.configs import video_focalnet


def get_config(arg=None):
  return video_focalnet.experiment(
      arg, variant='base', dataset='diving48', num_classes=48, gpus=4, flip=0.5,
      yaml="diving48/video-focalnet_base.yaml",
      checkpoint="https://drive.google.com/file/d/1MMZeDucN1cfC5MiTGIft8xNfo5358dA2/view", top1=90.8)
