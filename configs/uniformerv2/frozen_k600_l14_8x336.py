"""UniFormerV2-L/14@336 frozen on Kinetics-600 (600 classes), 8x336, initialised from CLIP."""

from vidjax.configs import uniformerv2


def get_config(arg=None):
  return uniformerv2.experiment(
      arg, exp="k600/frozen_k600_l14_f8x336", zoo="k600/frozen_k600_uniformerv2_l14_8x336",
      top1=87.4, family="frozen_l14_336", dataset="kinetics600", num_classes=600, num_frames=8,
      image_size=336, nodes=2, node_batch=256, base_lr=8e-4, epochs=50, warmup_epochs=0,
      num_clips=3, num_crops=1, init="clip")
