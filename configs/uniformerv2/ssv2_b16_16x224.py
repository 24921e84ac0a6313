"""UniFormerV2-B/16 on Something-Something V2 (174 classes), 16x224, initialised from CLIP."""

from vidjax.configs import uniformerv2


def get_config(arg=None):
  return uniformerv2.experiment(
      arg, exp="sthv2/ssv2_b16_f16x224", zoo="sthv2/sthv2_uniformerv2_b16_16x224", top1=69.5,
      family="sth_b16", dataset="something_something_v2", num_classes=174, num_frames=16, nodes=1,
      node_batch=128, base_lr=4e-5, epochs=22, warmup_epochs=5, num_clips=1, num_crops=3,
      init="clip")
