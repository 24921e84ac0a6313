"""UniFormerV2-L/14@336 frozen on Kinetics-710 (710 classes), 8x336, initialised from CLIP."""

from vidjax.configs import uniformerv2


def get_config(arg=None):
  return uniformerv2.experiment(
      arg, exp="k710/frozen_k710_l14_f8x336", zoo="k710/frozen_k710_uniformerv2_l14_8x336",
      top1=None, family="frozen_l14_336", dataset="kinetics710", num_classes=710, num_frames=8,
      image_size=336, nodes=4, node_batch=128, base_lr=8e-4, epochs=50, warmup_epochs=0,
      num_clips=3, num_crops=1, init="clip")
