"""UniFormerV2-L/14@336 frozen on Kinetics-700 (700 classes), 32x336, initialised from k710/frozen_k710_uniformerv2_l14_8x336.

The head keeps the K710 rows of the authors' ``label_mixto700.json``: set ``--config.init_from.label_map=FILE``.
"""

from vidjax.configs import uniformerv2


def get_config(arg=None):
  return uniformerv2.experiment(
      arg, exp="k700/frozen_k700+k710_l14_f32x336",
      zoo="k700/frozen_k700_k710_uniformerv2_l14_32x336", top1=80.8, family="frozen_l14_336",
      dataset="kinetics700", num_classes=700, num_frames=32, image_size=336, nodes=2,
      node_batch=128, base_lr=5e-5, epochs=5, warmup_epochs=1, num_clips=3, num_crops=1,
      init="k710/frozen_k710_uniformerv2_l14_8x336.pyth", head="label_map")
