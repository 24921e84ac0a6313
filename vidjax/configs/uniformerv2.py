"""UniFormerV2 experiments: one function, :func:`experiment`, for every released run.

Values follow the official ``exp/<dataset>/<name>/run.sh`` (which overrides ``config.yaml``) of
OpenGVLab/UniFormerV2 and its SlowFast code:

* AdamW (0.9, 0.999, eps 1e-8), weight decay 0.05 on parameters with >= 2 dims only
  (``SOLVER.ZERO_WD_1D_PARAM``: LayerNorm/BatchNorm/biases/``class_embedding``/``balance`` are
  1-D; ``positional_embedding`` and ``temporal_cls_token`` are decayed), global-norm clip 20,
  mean cross-entropy, no mixup or smoothing.
* Learning rate set every iteration from the fractional epoch (``slowfast/utils/lr_policy.py``):
  linear warmup from 1e-6 to ``BASE_LR`` over ``WARMUP_EPOCHS``, then cosine to 1e-6 at
  ``MAX_EPOCH`` (``COSINE_AFTER_WARMUP``); no LR scaling with the number of nodes.
* Global batch = ``TRAIN.BATCH_SIZE`` x ``NUM_SHARDS`` videos (x ``AUG.NUM_SAMPLE`` = 2 clips per
  video on Something-Something: repeated augmentation).
* ``UNIFORMERV2.PRETRAIN`` fine-tunes (K710 -> K400/600/700, K400 -> MiT/ANet/HACS): with
  ``DELETE_SPECIAL_HEAD`` and a different class count the head is re-initialised; without it the
  head keeps rows ``[:num_classes]`` (400 classes: the K400 classes are the first 400 K710 rows)
  or the rows of ``label_mixto{600,700}.json`` (the authors' label map, not in the repository).
* ``MODEL.USE_CHECKPOINT`` (gradient checkpointing of the first N blocks) becomes
  ``model.remat_policy='full'`` on every block.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from vidjax import configs
from vidjax.data import config as data_config

ZOO_URL = "https://pjlab-gvm-data.oss-cn-shanghai.aliyuncs.com/uniformerv2/{}.pyth"
CLIP = {"b16": "ViT-B/16", "l14": "ViT-L/14", "l14_336": "ViT-L/14@336px"}

# Architecture families (official config.yaml); every released family reads the last blocks.
FAMILIES = {
    # Kinetics / MiT / K710: global UniBlocks only.
    "b16": dict(variant="b16", return_list=(8, 9, 10, 11), n_head=12),
    "l14": dict(variant="l14", return_list=(20, 21, 22, 23), n_head=16),
    "l14_336": dict(variant="l14_336", return_list=(20, 21, 22, 23), n_head=16),
    "frozen_l14_336": dict(variant="l14_336", return_list=(20, 21, 22, 23), n_head=16,
                           frozen=True),
    # ActivityNet / HACS: as Kinetics L/14 with drop-path.
    "untrimmed_l14": dict(variant="l14", return_list=(20, 21, 22, 23), n_head=16,
                          backbone_drop_path_rate=0.2, drop_path_rate=0.4),
    # Something-Something: local + global UniBlocks, temporal downsampling.
    "sth_b16": dict(variant="b16", return_list=tuple(range(4, 12)), n_head=12, no_lmhra=False,
                    temporal_downsample=True, backbone_drop_path_rate=0.2, drop_path_rate=0.4),
    "sth_l14": dict(variant="l14", return_list=tuple(range(8, 24)), n_head=16, no_lmhra=False,
                    temporal_downsample=True, backbone_drop_path_rate=0.2, drop_path_rate=0.4),
}


def model(family: str, *, num_classes: int, num_frames: int,
          **overrides) -> ml_collections.ConfigDict:
  """``config.model`` with every UniFormerV2 field at its released value.

  The backbone geometry (width, layers, heads, patch_size, image_size) is left to ``variant``
  (typed placeholders, so ``--config.model.width=64`` still works).
  """
  f = FAMILIES[family]
  n = len(f["return_list"])
  m = ml_collections.ConfigDict(dict(
      name="uniformerv2", variant=f["variant"],
      width=config_dict.placeholder(int), layers=config_dict.placeholder(int),
      heads=config_dict.placeholder(int), patch_size=config_dict.placeholder(int),
      image_size=config_dict.placeholder(int),
      num_classes=num_classes, num_frames=num_frames,
      temporal_downsample=False, no_lmhra=True, double_lmhra=True, dw_reduction=1.5,
      return_list=f["return_list"], n_layers=n, n_head=f["n_head"], mlp_factor=4.0,
      mlp_dropout=(0.5,) * n, cls_dropout=0.5,
      backbone_drop_path_rate=0.0, drop_path_rate=0.0, frozen=False,
      fusion="sequential", num_queries=1, use_dpe=True,
      dtype="float32", param_dtype="float32", attention_impl="xla", remat_policy="none",
      depthwise_impl="auto", scan_layers=False))
  for k, v in {**f, **overrides}.items():
    if k not in m:
      raise KeyError(f"model.{k}: not a UniFormerV2 field")
    m[k] = v
  return m


def experiment(arg: str | None, *, family: str, dataset: str, num_classes: int,
               num_frames: int, image_size: int = 224, nodes: int, node_batch: int,
               base_lr: float, epochs: float, warmup_epochs: float, num_clips: int,
               num_crops: int, exp: str = "", zoo: str = "", top1: float | None = None,
               init: str = "clip", head: str = "keep", remat: bool = False,
               **model_overrides) -> ml_collections.ConfigDict:
  """One official run (``exp/<dataset>/<exp>/run.sh``).

  Args:
    arg: the config-file argument (``--config file.py:DIR``): a prepared dataset directory
      (``experiments/prepare_data.py``) stored as ``data.data_dir``.
    family: architecture family (:data:`FAMILIES`); dataset: ``kinetics400``,
      ``something_something_v2``, ...; nodes, node_batch: ``NUM_SHARDS`` and ``TRAIN.BATCH_SIZE``
      (videos per node); num_clips x num_crops: the test views.
    exp, zoo, top1: the official experiment, model-zoo file and its top-1 (documentation).
    init: 'clip' (CLIP visual weights: ``python -m convert clip``) or a zoo file it fine-tunes.
    head: how ``init_from`` treats the classifier ('keep', 'reinit', 'label_map').
    remat: ``MODEL.USE_CHECKPOINT``.
  """
  sth = family.startswith("sth")
  samples = 2 if sth else 1
  c = ml_collections.ConfigDict()
  c.model = model(family, num_classes=num_classes, num_frames=num_frames,
                  remat_policy="full" if remat else "none", **model_overrides)
  if image_size != 224:
    c.model.image_size = image_size
  c.data = data_config.uniformerv2_data(
      "ssv2" if sth else dataset, num_classes=num_classes, num_frames=num_frames,
      crop_size=image_size, data_dir=arg or "",
      video_short_side=256 if image_size <= 256 else 384,
      batch_size=nodes * node_batch * samples)
  c.data.train.num_samples = samples
  c.data.eval.update(num_clips=num_clips, num_crops=num_crops, short_side=image_size)
  c.data.dataset = dataset
  # Training-time validation: one centre view (SlowFast val: short side = crop, centre crop).
  c.val = ml_collections.ConfigDict(dict(num_clips=1, num_crops=1, short_side=image_size))
  c.optim = ml_collections.ConfigDict(dict(
      name="adamw", b1=0.9, b2=0.999, eps=1e-8,
      weight_decay=0.05, clip_grad_norm=20.0, grad_accum_steps=1))
  c.schedule = ml_collections.ConfigDict(dict(
      name="warmup_cosine", base_lr=base_lr, warmup_epochs=float(warmup_epochs),
      epochs=float(epochs), warmup_start_lr=1e-6, end_lr=1e-6))
  configs.training(c)
  c.init_from.head = head
  c.init_from.expected = (f"CLIP {CLIP[c.model.variant]} visual weights (python -m convert clip)"
                          if init == "clip" else f"UniFormerV2 zoo checkpoint {init} "
                          "(python -m convert uniformerv2)")
  c.official = ml_collections.ConfigDict(dict(
      exp=exp, zoo=zoo, url=ZOO_URL.format(zoo) if zoo else "",
      top1=top1 if top1 is not None else config_dict.placeholder(float)))
  return c
