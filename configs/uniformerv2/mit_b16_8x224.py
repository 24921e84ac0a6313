"""UniFormerV2-B/16 on Moments in Time v1 (339 classes), 8x224, initialised from k400/k400+k710_uniformerv2_b16_8x224.

``DELETE_SPECIAL_HEAD``: the head is re-initialised.
"""

from vidjax.configs import uniformerv2


def get_config(arg=None):
  return uniformerv2.experiment(
      arg, exp="mit/mit_b16_f8x224", zoo="mitv1/mit_uniformerv2_b16_8x224", top1=42.6,
      family="b16", dataset="moments_in_time", num_classes=339, num_frames=8, nodes=2,
      node_batch=256, base_lr=2e-5, epochs=24, warmup_epochs=5, num_clips=4, num_crops=3,
      init="k400/k400+k710_uniformerv2_b16_8x224.pyth", head="reinit")
