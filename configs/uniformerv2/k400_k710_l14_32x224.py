"""UniFormerV2-L/14 on Kinetics-400 (400 classes), 32x224, initialised from k710/k710_uniformerv2_l14_8x224.

``DELETE_SPECIAL_HEAD``: the head is re-initialised.
"""

from vidjax.configs import uniformerv2


def get_config(arg=None):
  return uniformerv2.experiment(
      arg, exp="k400/k400+k710_l14_f32x224", zoo="k400/k400_k710_uniformerv2_l14_32x224",
      top1=89.3, family="l14", dataset="kinetics400", num_classes=400, num_frames=32, nodes=4,
      node_batch=32, base_lr=1.5e-6, epochs=5, warmup_epochs=1, num_clips=4, num_crops=3,
      init="k710/k710_uniformerv2_l14_8x224.pyth", head="reinit")
