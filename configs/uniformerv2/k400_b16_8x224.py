"""UniFormerV2-B/16 on Kinetics-400 (400 classes), 8x224, initialised from CLIP."""

from vidjax.configs import uniformerv2


def get_config(arg=None):
  return uniformerv2.experiment(
      arg, exp="k400/k400_b16_f8x224", zoo="k400/k400_uniformerv2_b16_8x224", top1=84.4,
      family="b16", dataset="kinetics400", num_classes=400, num_frames=8, nodes=1, node_batch=256,
      base_lr=1e-5, epochs=55, warmup_epochs=5, num_clips=4, num_crops=3, init="clip")
