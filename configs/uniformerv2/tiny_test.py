"""A tiny UniFormerV2 for tests: width 64, 4 blocks, 32x32 clips of 4 frames.

The full released Sth-Sth design (local + global UniBlocks, temporal downsampling, drop-path) at
toy size; no official checkpoint.
"""

from vidjax.configs import uniformerv2


def get_config(arg=None):
  c = uniformerv2.experiment(
      arg, family="sth_b16", dataset="synthetic", num_classes=10, num_frames=4, image_size=32,
      nodes=1, node_batch=4, base_lr=1e-3, epochs=1, warmup_epochs=0, num_clips=1, num_crops=1)
  c.model.update(dict(width=64, layers=4, heads=4, n_head=4, patch_size=8,
                      return_list=(2, 3), n_layers=2, mlp_dropout=(0.5, 0.5)))
  return c
