"""UniFormerV2-L/14@336 on Kinetics-700 (700 classes), 64x336, initialised from k710/k710_uniformerv2_l14_8x336.

The head keeps the K710 rows of the authors' ``label_mixto700.json``: set ``--config.init_from.label_map=FILE``.
Gradient checkpointing (``CHECKPOINT_NUM [24]``): ``model.remat_policy='full'``.
"""

from vidjax.configs import uniformerv2


def get_config(arg=None):
  return uniformerv2.experiment(
      arg, exp="k700/k700+k710_l14_f64x336", zoo="k700/k700_k710_uniformerv2_l14_64x336",
      top1=82.7, family="l14_336", dataset="kinetics700", num_classes=700, num_frames=64,
      image_size=336, nodes=8, node_batch=16, base_lr=1.5e-6, epochs=5, warmup_epochs=1,
      num_clips=4, num_crops=3, init="k710/k710_uniformerv2_l14_8x336.pyth", head="label_map",
      remat=True)
