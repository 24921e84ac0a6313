"""UniFormerV2-L/14 on HACS (200 classes), 16x224, initialised from k400/k400+k710_uniformerv2_l14_16x224.

``DELETE_SPECIAL_HEAD``: the head is re-initialised.
Gradient checkpointing (``CHECKPOINT_NUM [1]``): ``model.remat_policy='full'``.
"""

from vidjax.configs import uniformerv2


def get_config(arg=None):
  return uniformerv2.experiment(
      arg, exp="hacs/hacs_l14_16x224", zoo="hacs/hacs_uniformerv2_l14_16x224", top1=95.5,
      family="untrimmed_l14", dataset="hacs", num_classes=200, num_frames=16, nodes=2,
      node_batch=32, base_lr=5e-6, epochs=20, warmup_epochs=5, num_clips=10, num_crops=3,
      init="k400/k400+k710_uniformerv2_l14_16x224.pyth", head="reinit", remat=True)
