"""Tiny Video-FocalNet for tests: widths 16-128, depths (1,1,2,1), 4 frames of 64x64.

Not an official config (no yaml / checkpoint); same released design, fp32.
"""

from vidjax.configs import video_focalnet


def get_config(arg=None):
  c = video_focalnet.experiment(arg, variant="tiny", dataset="synthetic", num_classes=10, gpus=1,
                                depths=(1, 1, 2, 1), embed_dim=16, num_frames=4, image_size=64,
                                drop_path_rate=0.1)
  c.data.video_short_side = 72
  c.data.batch_size = 2
  return c
