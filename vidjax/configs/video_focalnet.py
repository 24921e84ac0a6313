"""Video-FocalNet experiments: one function, :func:`experiment`, for the seven released yamls.

Values follow TalalWasim/Video-FocalNets at commit 39eba99 (``configs/*/*.yaml``, ``config.py``,
``main.py``, ``optimizer.py``, ``lr_scheduler.py``, ``scripts/*``):

* SGD, Nesterov momentum 0.9, global-norm clip 5.0; ``BASE_LR 0.1``, ``WARMUP_LR`` = ``MIN_LR``
  1e-3, all three scaled by (global batch / 512) in ``main.py``; 8 clips per GPU, the GPU count
  of each ``scripts/*.sh``.
* **Weight decay is zero as released**: ``set_weight_decay`` puts every parameter whose name
  contains a keyword of ``no_weight_decay_keywords()`` = ``{''}`` (i.e. all of them) in the
  wd=0 group, so ``WEIGHT_DECAY 1e-4`` never acts. ``--config.optim.weight_decay=1e-4`` gives
  the intended recipe (>= 2-D parameters decayed; biases and norms excluded).
* timm ``CosineLRScheduler(t_initial=EPOCHS*iters, warmup_t=WARMUP_EPOCHS*iters,
  warmup_prefix=False)`` stepped per iteration after ``optimizer.step()``: linear warmup, then the
  cosine at the absolute step (lr drops at the end of warmup), one step of lag.
* Mixup 0.8 / CutMix 1.0 / switch 0.5, label smoothing 0.1, soft-target cross-entropy.
* Test: 4 TSN clips x 3 crops after short side 224, per-view softmax summed; validation during
  training: centre frames, short side 256, centre crop 224.
"""

from __future__ import annotations

import ml_collections

from vidjax import configs
from vidjax.data import config as data_config

# Official per-variant drop-path rates (yaml MODEL.DROP_PATH_RATE) and ImageNet init checkpoints.
DROP_PATH = {"tiny": 0.2, "small": 0.3, "base": 0.5}
IMAGENET_INIT = {v: f"focalnet_{v}_srf.pth" for v in ("tiny", "small", "base")}
BATCH_PER_GPU = 8


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
      dtype="float32", param_dtype="float32", remat_policy="none", depthwise_impl="auto",
      scan_layers=False))
  for k, v in overrides.items():
    if k not in m:
      raise KeyError(f"model.{k}: not a Video-FocalNet field")
    m[k] = v
  return m


def experiment(arg: str | None, *, variant: str, dataset: str, num_classes: int, gpus: int,
               flip: float = 0.5, label_smoothing: float = 0.1, yaml: str = "",
               checkpoint: str = "", top1: float | None = None,
               **model_overrides) -> ml_collections.ConfigDict:
  """One released yaml; ``arg`` = a prepared dataset directory (``data.data_dir``).

  ``gpus``: the GPU count of the yaml's ``scripts/*.sh`` (global batch = 8 x gpus, lr scaled by
  batch / 512); ``yaml``, ``checkpoint`` (Drive URL of the released weights), ``top1``: the
  official run (documentation, ``config.official``). The ImageNet init is
  ``IMAGENET_INIT[variant]`` (microsoft ``focalnet_<variant>_srf.pth``).
  """
  c = ml_collections.ConfigDict()
  c.model = model(variant, num_classes, **model_overrides)
  batch = BATCH_PER_GPU * gpus
  c.data = data_config.video_focalnet_data(
      dataset, num_classes=num_classes, num_frames=c.model.num_frames,
      crop_size=c.model.image_size, data_dir=arg or "", batch_size=batch)
  c.data.train.flip_prob = flip
  c.data.mixing.label_smoothing = label_smoothing
  c.data.eval.update(num_clips=4, num_crops=3, short_side=224)
  c.val = ml_collections.ConfigDict(dict(num_clips=1, num_crops=1, short_side=256))
  scale = batch / 512  # main.py: lr = BASE_LR * batch * world_size / 512
  c.optim = ml_collections.ConfigDict(dict(
      name="sgd", momentum=0.9, nesterov=True, weight_decay=0.0, clip_grad_norm=5.0,
      grad_accum_steps=1))
  c.schedule = ml_collections.ConfigDict(dict(
      name="timm_cosine", base_lr=0.1 * scale, warmup_epochs=20.0, epochs=120.0,
      warmup_start_lr=1e-3 * scale, end_lr=1e-3 * scale))
  configs.training(c)
  c.init_from.head = "reinit"  # main.py re-draws the head (trunc_normal .02) after loading
  c.init_from.expected = (f"ImageNet FocalNet {IMAGENET_INIT.get(variant, '')} "
                          "(python -m convert focalnet)")
  c.official = ml_collections.ConfigDict(dict(yaml=yaml, checkpoint=checkpoint,
                                              top1=top1 if top1 is not None else -1.0))
  return c
