"""Values shared by the Video-FocalNet configs (official ``configs/*/*.yaml`` + ``config.py``).

Reference: ``TalalWasim/Video-FocalNets`` @39eba99; see shared/reference/videofocalnet.md §3.
"""

from __future__ import annotations

import ml_collections

# Official per-variant drop-path rates (yaml MODEL.DROP_PATH_RATE) and ImageNet init checkpoints.
DROP_PATH = {"tiny": 0.2, "small": 0.3, "base": 0.5}
IMAGENET_INIT = {v: f"focalnet_{v}_srf.pth" for v in ("tiny", "small", "base")}


def model(variant: str, num_classes: int, **overrides) -> ml_collections.ConfigDict:
  """``config.model`` with every Video-FocalNet field at its released value."""
  m = ml_collections.ConfigDict(dict(
      name="video_focalnet", variant=variant, depths=None, embed_dim=None,
      num_classes=num_classes, num_frames=8, image_size=224, patch_size=4, mlp_ratio=4.0,
      drop_path_rate=DROP_PATH.get(variant, 0.0), drop_rate=0.0,
      focal_levels=(2, 2, 2, 2), focal_windows=(3, 3, 3, 3), focal_factor=2, tubelet_size=1,
      use_postln=False, use_postln_in_modulation=False, normalize_modulator=False,
      use_layerscale=False, layerscale_value=1e-4, use_conv_embed=False,
      design="spatio_temporal", modulator_fusion="multiply",
      dtype="bfloat16", param_dtype="float32", remat_policy="none", scan_layers=False))
  for k, v in overrides.items():
    if k not in m:
      raise KeyError(f"model.{k}: not a Video-FocalNet field")
    m[k] = v
  return m


def get_config(*, variant: str, dataset: str, num_classes: int, gpus: int, flip: float = 0.5,
               label_smoothing: float = 0.1, **model_overrides) -> ml_collections.ConfigDict:
  """The released recipe (reference §3.1-3.3) for one yaml."""
  c = ml_collections.ConfigDict()
  c.model = model(variant, num_classes, **model_overrides)
  c.init = ml_collections.ConfigDict(dict(
      imagenet_checkpoint=IMAGENET_INIT.get(variant, ""),  # TRAIN.PRETRAINED_PATH
      reinit_head=True))  # head weight and bias re-drawn trunc_normal(.02)
  c.data = ml_collections.ConfigDict(dict(
      dataset=dataset, num_classes=num_classes, num_frames=8, image_size=224,
      sampling="tsn_segments",  # SampleFrames(clip_len=1, frame_interval=4, num_clips=8)
      short_side=256, rrc_area=(0.08, 1.0), rrc_ratio=(3 / 4, 4 / 3), flip=flip,
      color_jitter=0.8, color_jitter_per_frame=True, grayscale=0.2,
      mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375),
      batch_size_per_device=8))
  total_batch = 8 * gpus
  scale = total_batch / 512  # main.py: lr = BASE_LR * batch * world_size / 512
  c.optim = ml_collections.ConfigDict(dict(
      optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=0.0,  # official wd is a no-op
      base_lr=0.1 * scale, warmup_lr=1e-3 * scale, min_lr=1e-3 * scale, epochs=120,
      warmup_epochs=20, warmup_prefix=False, clip_grad=5.0, total_batch_size=total_batch,
      mixup=0.8, cutmix=1.0, mixup_switch_prob=0.5, label_smoothing=label_smoothing))
  c.eval = ml_collections.ConfigDict(dict(
      num_clips=4, num_crops=3, test_short_side=224, val_short_side=256, score="sum_softmax"))
  return c
