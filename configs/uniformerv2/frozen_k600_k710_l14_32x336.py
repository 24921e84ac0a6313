"""UniFormerV2-L/14@336 frozen on Kinetics-600 (600 classes), 32x336, initialised from k710/frozen_k710_uniformerv2_l14_8x336.

The head keeps the K710 rows of the authors' ``label_mixto600.json``: set ``--config.init_from.label_map=FILE``.
"""

from vidjax.configs import uniformerv2


def get_config(arg=None):
  return uniformerv2.experiment(
      arg, exp="k600/frozen_k600+k710_l14_f32x336",
      zoo="k600/frozen_k600_k710_uniformerv2_l14_32x336", top1=89.2, family="frozen_l14_336",
      dataset="kinetics600", num_classes=600, num_frames=32, image_size=336, nodes=2,
      node_batch=128, base_lr=5e-5, epochs=5, warmup_epochs=1, num_clips=3, num_crops=1,
      init="k710/frozen_k710_uniformerv2_l14_8x336.pyth", head="label_map")
