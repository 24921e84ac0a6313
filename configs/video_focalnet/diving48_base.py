"""Video-FocalNet-B on diving48: 48 classes, 8x224, drop-path 0.5.

Official yaml: ``TalalWasim/Video-FocalNets/configs/diving48/video-focalnet_base.yaml`` (commit 39eba99);
checkpoint: Diving-48 (V2 splits) Video-FocalNet-B (90.8 top-1, Drive id 1MMZeDucN1cfC5MiTGIft8xNfo5358dA2).
Init: microsoft ``focalnet_base_srf.pth``.
Total batch 32 = 8 x 4 GPUs (scripts/), lr scaled by batch/512.
"""

from vidjax.configs import video_focalnet


def get_config(arg=None):
  return video_focalnet.experiment(
      arg, variant='base', dataset='diving48', num_classes=48, gpus=4, flip=0.5,
      yaml="diving48/video-focalnet_base.yaml",
      checkpoint="https://drive.google.com/file/d/1MMZeDucN1cfC5MiTGIft8xNfo5358dA2/view", top1=90.8)
