"""UniFormerV2-L/14@336 frozen on Kinetics-400 (400 classes), 8x336, initialised from CLIP."""

from vidjax.configs import uniformerv2


def get_config(arg=None):
  return uniformerv2.experiment(
      arg, exp="k400/frozen_k400_l14_f8x336", zoo="k400/frozen_k400_uniformerv2_l14_8x336",
      top1=86.7, family="frozen_l14_336", dataset="kinetics400", num_classes=400, num_frames=8,
      image_size=336, nodes=2, node_batch=256, base_lr=8e-4, epochs=50, warmup_epochs=0,
      num_clips=3, num_crops=1, init="clip")
