"""`ml_collections` defaults for `config.data` of the two recipes (UniFormerV2, Video-FocalNet)."""

from __future__ import annotations

import ml_collections

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def base_data(**overrides) -> ml_collections.ConfigDict:
  """Fields shared by every recipe; `overrides` are applied on top (dotted keys not needed)."""
  c = ml_collections.ConfigDict()
  # Source: 'prepared' (tfds ArrayRecord from experiments/prepare_data.py) or 'files' (videos).
  c.source = "prepared"
  c.data_dir = ""             # prepared: the tfds dataset folder (with dataset_info.json)
  c.train_split = "train"
  c.eval_split = "val"
  c.format = "list"           # files: kinetics_csv | ssv2_json | list | folders
  c.train_annotations = ""
  c.eval_annotations = ""
  c.video_dir = ""
  c.labels = ""               # class-name file (txt/json); ssv2: the labels JSON
  c.num_classes = 400
  c.video_short_side = 256    # files / prepared 'video' mode: resize on decode (0 = keep)
  c.video_threads = 1         # ffmpeg threads per decoder
  # Temporal sampling.
  c.num_frames = 8
  c.sampling = "tsn"          # 'tsn' (sparse segments) | 'dense' (T×τ)
  c.stride = 4                # dense only
  c.crop_size = 224
  # Train augmentation (per clip unless noted).
  c.train = ml_collections.ConfigDict(dict(
      scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip_prob=0.5, resample="bilinear",
      rand_augment="", randaug_interpolation="bicubic", randaug_mode="fused",
      color_jitter_prob=0.0, color_jitter=(0.4, 0.4, 0.2, 0.1), grayscale_prob=0.0,
      # jitter_mode: 'released' (one jitter and one gray coin per clip, jitter factors drawn per
      # frame, as Video-FocalNets), 'per_frame' (coins and factors per frame) or 'per_clip'.
      jitter_mode="released", num_samples=1,
      # augment_on: 'host' (PIL, everything on the host) or 'device': the host samples every
      # parameter and applies the geometry (crop, fused geometric warp); RandAugment's colour
      # ops, flip, jitter and gray run in the train step (`vidjax.data.device_aug.apply`).
      # 'auto' (default): `resolve_augment_on` picks 'device' with a canvas on accelerators,
      # 'host' on CPU.
      augment_on="auto",
      # device only: (H, W) > 0 ships the whole decoded frames on an H×W canvas (0-padded) and
      # the device cuts the crop with RandAugment's geometric ops (`device_aug.warp`); frames
      # larger than the canvas are cut on the host. () = the host cuts every crop.
      device_canvas=()))
  # Evaluation views: num_clips temporal × num_crops spatial after short side → eval short_side.
  c.eval = ml_collections.ConfigDict(dict(num_clips=4, num_crops=3, short_side=224,
                                          resample="bilinear"))
  c.mean = (0.45, 0.45, 0.45)   # applied on device (mixing.normalize), after /255
  c.std = (0.225, 0.225, 0.225)
  # On-device mixing in the train step (mixing.mix).
  c.mixing = ml_collections.ConfigDict(dict(mixup_alpha=0.0, cutmix_alpha=0.0, switch_prob=0.5,
                                            label_smoothing=0.0))
  # Loader. Batch sizes are GLOBAL (all processes together); each process gets size / count.
  c.batch_size = 32           # global, in clips (repeated samples included)
  c.eval_batch_size = 8       # global, in videos (each with num_clips×num_crops views)
  c.workers = 4               # grain mp_prefetch processes (0 = in-process)
  c.threads = 1               # grain read threads per process
  c.prefetch = 4              # per-worker buffered batches
  c.seed = 0
  c.num_epochs = -1           # -1: repeat forever
  c.max_replacements = 10     # consecutive undecodable replacements before giving up
  # Bad input. A video whose readable frames fall short of the container's declared count by
  # more than this fraction is truncated, i.e. undecodable (train: replaced; eval: failed;
  # prepare_data: listed in failures); 1.0 disables the check.
  c.max_missing_fraction = 0.25
  # files source (and prepare_data): refuse when fewer than this fraction of the annotated
  # videos are found (e.g. a wrong video_dir) or, in prepare_data, readable.
  c.min_usable_fraction = 0.5
  c.update(overrides)
  return c


AUGMENT_ON = ("auto", "host", "device")


def resolve_augment_on(data_cfg, backend: str | None = None) -> tuple[str, tuple[int, ...]]:
  """``(augment_on, device_canvas)`` of ``data_cfg.train`` with ``'auto'`` decided.

  'auto' is 'device' on an accelerator (``backend``, default ``jax.default_backend()``, not
  'cpu'): the host decodes and ships whole frames on a canvas ``(S, ceil(16 S / 9))`` for
  S = ``data_cfg.video_short_side`` (every 16:9 or narrower frame of short side S; the canvas
  given in ``device_canvas`` wins; S = 0 leaves the crop to the host) and the train step does
  the rest (issue 14's measurement: 12-23x the official pipelines per host core on prepared
  frames). On CPU the "device" is the host itself, and RandAugment ``'exact'`` exists on the host
  only: 'host' there. Explicit 'host' / 'device' are returned unchanged.
  """
  t = data_cfg["train"]
  on, canvas = t.get("augment_on", "auto"), tuple(t.get("device_canvas") or ())
  if on not in AUGMENT_ON:
    raise ValueError(f"data.train.augment_on={on!r}: expected one of {list(AUGMENT_ON)}")
  if on != "auto":
    return on, canvas
  if backend is None:
    import jax
    backend = jax.default_backend()
  if backend == "cpu" or t["randaug_mode"] == "exact":
    return "host", canvas
  s = int(data_cfg["video_short_side"])
  return "device", canvas or ((s, -(-16 * s // 9)) if s > 0 else ())


def uniformerv2_data(dataset: str = "k400", **overrides) -> ml_collections.ConfigDict:
  """UniFormerV2: TSN sampling, RandAugment m7-n4-mstd0.5-inc1 (bicubic) → RRC(0.08,1) → flip;
  mean/std 0.45/0.225; Sth-Sth: no flip, 2 repeated samples, 16 frames × 3 crops × 1 clip."""
  c = base_data()
  c.train.rand_augment = "rand-m7-n4-mstd0.5-inc1"
  # 'fused' (default, fast): geometric ops + crop as one bilinear warp, colour ops after it;
  # 'exact': every op on the full frame with bicubic, then the crop (released order, ~2× slower).
  if dataset.startswith("sth") or dataset == "ssv2":
    c.train.flip_prob = 0.0
    c.train.num_samples = 2
    c.num_frames, c.eval.num_clips, c.num_classes = 16, 1, 174
  c.update(overrides)
  return c


def video_focalnet_data(dataset: str = "k400", **overrides) -> ml_collections.ConfigDict:
  """Video-FocalNet: TSN 8 frames, RRC(0.08,1) → flip → jitter p=.8 → gray p=.2 (coins per clip),
  ImageNet mean/std, mixup .8 / cutmix 1. / switch .5 / smoothing .1; test 4 clips × 3 crops."""
  c = base_data()
  c.train.color_jitter_prob = 0.8
  c.train.grayscale_prob = 0.2
  c.mean, c.std = IMAGENET_MEAN, IMAGENET_STD
  c.mixing = ml_collections.ConfigDict(dict(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5,
                                            label_smoothing=0.1))
  if dataset == "ssv2":
    c.train.flip_prob = 0.0
    c.num_classes = 174
  c.update(overrides)
  return c
