"""UniFormerV2-B/16 on Kinetics-700 (700 classes), 8x224, initialised from k710/k710_uniformerv2_b16_8x224.

The head keeps the K710 rows of the authors' ``label_mixto700.json``: set ``--config.init_from.label_map=FILE``.
"""

from vidjax.configs import uniformerv2


def get_config(arg=None):
  return uniformerv2.experiment(
      arg, exp="k700/k700+k710_b16_f8x224", zoo="k700/k700_k710_uniformerv2_b16_8x224", top1=76.3,
      family="b16", dataset="kinetics700", num_classes=700, num_frames=8, nodes=1, node_batch=256,
      base_lr=2e-6, epochs=5, warmup_epochs=1, num_clips=4, num_crops=3,
      init="k710/k710_uniformerv2_b16_8x224.pyth", head="label_map")
