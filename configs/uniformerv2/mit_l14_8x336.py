"""UniFormerV2-L/14@336 on Moments in Time v1 (339 classes), 8x336, initialised from k400/k400+k710_uniformerv2_l14_8x336.

``DELETE_SPECIAL_HEAD``: the head is re-initialised.
Gradient checkpointing (``CHECKPOINT_NUM [21]``): ``model.remat_policy='full'``.
"""

from vidjax.configs import uniformerv2


def get_config(arg=None):
  return uniformerv2.experiment(
      arg, exp="mit/mit_l14_f8x336", zoo="mitv1/mit_uniformerv2_l14_8x336", top1=47.8,
      family="l14_336", dataset="moments_in_time", num_classes=339, num_frames=8, image_size=336,
      nodes=4, node_batch=128, base_lr=1e-5, epochs=18, warmup_epochs=5, num_clips=4, num_crops=3,
      init="k400/k400+k710_uniformerv2_l14_8x336.pyth", head="reinit", remat=True)
