"""Toy-size experiments on the synthetic motion videos (``vidjax.data.synthetic``), for the demo
and the tests: small enough to train on 2 CPU cores in minutes, with the released designs.

The classes are motion directions, speeds and rotation senses, invisible in any single frame, so
the temporal modules (UniFormerV2's local MHRA and DPE, Video-FocalNet's temporal modulation)
are what lets a model beat chance.
"""

from __future__ import annotations

import os

import ml_collections

from vidjax.configs import uniformerv2 as uniformerv2_family
from vidjax.configs import video_focalnet as video_focalnet_family

NUM_CLASSES = 8
NUM_FRAMES = 8
IMAGE_SIZE = 64


def synthetic_data(c: ml_collections.ConfigDict, root: str | None) -> None:
  """Points ``c.data`` at a ``vidjax.data.synthetic`` folder (MMAction list files)."""
  root = root or ""
  c.data.update(dict(
      source="files", format="list", video_dir=root,
      train_annotations=os.path.join(root, "train.txt") if root else "",
      eval_annotations=os.path.join(root, "val.txt") if root else "",
      labels=os.path.join(root, "classes.txt") if root else "",
      video_short_side=72, workers=0, eval_batch_size=-1))
  c.data.train.update(dict(scale=(0.6, 1.0), rand_augment="", flip_prob=0.0,
                           color_jitter_prob=0.0, grayscale_prob=0.0))
  c.data.eval.update(dict(num_clips=2, num_crops=1, short_side=IMAGE_SIZE))
  c.val.update(dict(num_clips=1, num_crops=1, short_side=IMAGE_SIZE))
  c.log_every_steps = 10
  c.checkpoint_every_steps = 100
  c.eval_every_steps = 0
  c.init_from.expected = ""


def uniformerv2(root: str | None) -> ml_collections.ConfigDict:
  c = uniformerv2_family.experiment(
      root, family="sth_b16", dataset="synthetic", num_classes=NUM_CLASSES,
      num_frames=NUM_FRAMES, image_size=IMAGE_SIZE, nodes=1, node_batch=8, base_lr=1e-3,
      epochs=12, warmup_epochs=1, num_clips=2, num_crops=1)
  c.model.update(dict(width=64, layers=4, heads=4, n_head=4, patch_size=8, return_list=(2, 3),
                      n_layers=2, mlp_dropout=(0.0, 0.0), cls_dropout=0.0,
                      backbone_drop_path_rate=0.0, drop_path_rate=0.0, depthwise_impl="shift"))
  c.optim.weight_decay = 0.05
  synthetic_data(c, root)
  return c


def video_focalnet(root: str | None) -> ml_collections.ConfigDict:
  c = video_focalnet_family.experiment(
      root, variant="tiny", dataset="synthetic", num_classes=NUM_CLASSES, gpus=2, flip=0.0,
      depths=(1, 1, 2, 1), embed_dim=24, num_frames=NUM_FRAMES, image_size=IMAGE_SIZE,
      drop_path_rate=0.0)
  c.model.depthwise_impl = "shift"  # XLA's grouped convs are the CPU bottleneck
  c.schedule.update(dict(base_lr=0.05, warmup_start_lr=1e-3, end_lr=1e-3, warmup_epochs=1.0,
                         epochs=12.0))
  c.data.mixing.update(dict(mixup_alpha=0.0, cutmix_alpha=0.0, label_smoothing=0.1))
  synthetic_data(c, root)
  return c
