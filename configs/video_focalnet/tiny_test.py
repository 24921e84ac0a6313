"""Tiny Video-FocalNet for tests and demos: widths 16-128, depths (1,1,2,1), 4 frames of 64x64.

Not an official config (no yaml / checkpoint); same released design, fp32.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from configs.video_focalnet import common  # noqa: E402


def get_config():
  c = common.get_config(variant="tiny", dataset="synthetic", num_classes=10, gpus=1,
                        depths=(1, 1, 2, 1), embed_dim=16, num_frames=4, image_size=64,
                        drop_path_rate=0.1, dtype="float32")
  c.data.num_frames, c.data.image_size, c.data.short_side = 4, 64, 72
  c.data.batch_size_per_device = 2
  c.init.imagenet_checkpoint = ""
  return c
