"""UniFormerV2-L/14 on Kinetics-700 (700 classes), 32x224, initialised from k710/k710_uniformerv2_l14_8x224.

The head keeps the K710 rows of the authors' ``label_mixto700.json``: set ``--config.init_from.label_map=FILE``.
"""

from vidjax.configs import uniformerv2


def get_config(arg=None):
  return uniformerv2.experiment(
      arg, exp="k700/k700+k710_l14_f32x224", zoo="k700/k700_k710_uniformerv2_l14_32x224",
      top1=81.5, family="l14", dataset="kinetics700", num_classes=700, num_frames=32, nodes=4,
      node_batch=32, base_lr=1.5e-6, epochs=5, warmup_epochs=1, num_clips=4, num_crops=3,
      init="k710/k710_uniformerv2_l14_8x224.pyth", head="label_map")
