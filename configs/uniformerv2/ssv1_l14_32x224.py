"""UniFormerV2-L/14 on Something-Something V1 (174 classes), 32x224, initialised from CLIP.

Gradient checkpointing (``CHECKPOINT_NUM [15]``): ``model.remat_policy='full'``.
"""

from vidjax.configs import uniformerv2


def get_config(arg=None):
  return uniformerv2.experiment(
      arg, exp="sthv1/ssv1_l14_f32x224", zoo="sthv1/sthv1_uniformerv2_l14_32x224", top1=62.7,
      family="sth_l14", dataset="something_something_v1", num_classes=174, num_frames=32, nodes=4,
      node_batch=32, base_lr=2e-5, epochs=22, warmup_epochs=5, num_clips=1, num_crops=3,
      init="clip", remat=True)
