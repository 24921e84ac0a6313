"""UniFormerV2-L/14@336 frozen on Kinetics-400 (400 classes), 32x336, initialised from k710/frozen_k710_uniformerv2_l14_8x336.

The head keeps the first 400 rows of the source head (the K400 classes).
"""

from vidjax.configs import uniformerv2


def get_config(arg=None):
  return uniformerv2.experiment(
      arg, exp="k400/frozen_k400+k710_l14_f32x336",
      zoo="k400/frozen_k400_k710_uniformerv2_l14_32x336", top1=88.9, family="frozen_l14_336",
      dataset="kinetics400", num_classes=400, num_frames=32, image_size=336, nodes=2,
      node_batch=128, base_lr=5e-5, epochs=5, warmup_epochs=1, num_clips=3, num_crops=1,
      init="k710/frozen_k710_uniformerv2_l14_8x336.pyth")
