"""CLIP ViT (B/16, L/14, L/14@336) -> UniFormerV2 initialisation, as the official loader does it.

Accepted layouts (detected from the keys):

* ``openai-torchscript``: OpenAI's released ``ViT-B-16.pt`` / ``ViT-L-14.pt`` /
  ``ViT-L-14-336px.pt`` (TorchScript archives of the whole CLIP model: ``visual.*`` + text tower).
* ``clip-state-dict``: a whole CLIP state dict with ``visual.*`` keys: open_clip checkpoints
  (``.pt`` / ``.bin`` / ``.safetensors``, possibly under ``state_dict`` with ``module.``) or an
  OpenAI model saved with ``torch.save(model.state_dict())``.
* ``clip-visual``: the extracted visual state dicts UniFormerV2 users already have
  (``vit_b16.pth``: ``conv1.weight``, ``transformer.resblocks.N.attn.in_proj_weight``, ..., with
  or without ``proj`` / ``ln_post``); also MMAction2's ``clipVisualEncoder`` files.
* ``hf-clip``: Hugging Face ``CLIPVisionModel`` / ``CLIPModel`` weights (``vision_model.*``, split
  ``q_proj/k_proj/v_proj``, ``pre_layrnorm``, ``layer_norm1/2``, ``mlp.fc1/fc2``).

Semantics (official ``uniformerv2_model.load_state_dict`` + ``inflate_weight``): every backbone
weight is copied; the 2-D patch kernel (C, 3, p, p) is inflated to the (C, 3, kt, p, p) tubelet
with the CLIP kernel in the centre time slot and zeros elsewhere (``inflate='average'``: w / kt in
every slot); CLIP's ``proj``, ``ln_post`` and the text tower are dropped; everything UniFormerV2
adds (local MHRA, DPE, global blocks, ``temporal_cls_token``, ``balance``) keeps its zero-style
init and the head is fresh. CLIP models trained with erf-GELU (LAION open_clip without
``-quickgelu``) load, but UniFormerV2 uses QuickGELU like OpenAI CLIP.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from convert import common

BLOCK_PARAMS = ("attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight",
                "attn.out_proj.bias", "ln_1.weight", "ln_1.bias", "mlp.c_fc.weight",
                "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias", "ln_2.weight",
                "ln_2.bias")
STEM_PARAMS = ("class_embedding", "positional_embedding", "conv1.weight", "ln_pre.weight",
               "ln_pre.bias")
DROPPED_VISUAL = ("proj", "ln_post.weight", "ln_post.bias")   # CLIP head: unused by UniFormerV2
TEXT_EXACT = {"positional_embedding", "text_projection", "logit_scale", "logit_bias",
              "input_resolution", "context_length", "vocab_size", "attn_mask"}
TEXT_PREFIXES = ("transformer.", "token_embedding.", "ln_final.")
KNOWN_VITS = {(768, 16, 12): "ViT-B/16", (768, 32, 12): "ViT-B/32", (1024, 14, 24): "ViT-L/14",
              (1280, 14, 32): "ViT-H/14"}

_HF_BLOCK = {"self_attn.out_proj.weight": "attn.out_proj.weight",
             "self_attn.out_proj.bias": "attn.out_proj.bias",
             "layer_norm1.weight": "ln_1.weight", "layer_norm1.bias": "ln_1.bias",
             "layer_norm2.weight": "ln_2.weight", "layer_norm2.bias": "ln_2.bias",
             "mlp.fc1.weight": "mlp.c_fc.weight", "mlp.fc1.bias": "mlp.c_fc.bias",
             "mlp.fc2.weight": "mlp.c_proj.weight", "mlp.fc2.bias": "mlp.c_proj.bias"}
_HF_STEM = {"vision_model.embeddings.class_embedding": "class_embedding",
            "vision_model.embeddings.patch_embedding.weight": "conv1.weight",
            "vision_model.embeddings.position_embedding.weight": "positional_embedding",
            "vision_model.pre_layrnorm.weight": "ln_pre.weight",
            "vision_model.pre_layrnorm.bias": "ln_pre.bias",
            "vision_model.post_layernorm.weight": "ln_post.weight",
            "vision_model.post_layernorm.bias": "ln_post.bias"}


def _num_blocks(keys, prefix: str) -> int:
  idx = {int(m.group(1)) for k in keys if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
  return max(idx) + 1 if idx else 0


def visual_keys(layers: int) -> list[str]:
  """Every key of an extracted CLIP visual state dict (without proj / ln_post)."""
  return list(STEM_PARAMS) + [f"transformer.resblocks.{i}.{p}" for i in range(layers)
                              for p in BLOCK_PARAMS]


def _from_hf(sd: Mapping[str, np.ndarray], report: common.Report) -> dict[str, np.ndarray]:
  out: dict[str, np.ndarray] = {}
  layers = _num_blocks(sd, "vision_model.encoder.layers.")
  used = set()
  for k, v in sd.items():
    if k in _HF_STEM:
      out[_HF_STEM[k]] = v
      used.add(k)
      report.renamed[k] = _HF_STEM[k]
    elif k == "visual_projection.weight":
      out["proj"] = v.T    # HF Linear (out, in); OpenAI's proj is the raw (in, out) matrix
      used.add(k)
      report.renamed[k] = "proj"
    elif k == "vision_model.embeddings.position_ids" or k.startswith("text_model.") or k in (
        "text_projection.weight", "logit_scale", "logit_bias"):
      report.dropped.append(f"{k} ({'buffer' if 'position_ids' in k else 'text tower'})")
      used.add(k)
  for i in range(layers):
    pre = f"vision_model.encoder.layers.{i}."
    for suffix in ("weight", "bias"):
      parts = [pre + f"self_attn.{n}_proj.{suffix}" for n in "qkv"]
      if all(p in sd for p in parts):
        out[f"transformer.resblocks.{i}.attn.in_proj_{suffix}"] = np.concatenate(
            [sd[p] for p in parts], axis=0)
        used.update(parts)
        for p in parts:
          report.renamed[p] = f"transformer.resblocks.{i}.attn.in_proj_{suffix} (q;k;v rows)"
    for hf, ours in _HF_BLOCK.items():
      if pre + hf in sd:
        out[f"transformer.resblocks.{i}.{ours}"] = sd[pre + hf]
        used.add(pre + hf)
        report.renamed[pre + hf] = f"transformer.resblocks.{i}.{ours}"
  leftovers = sorted(set(sd) - used)
  if leftovers:
    raise common.ConversionError(
        f"Hugging Face CLIP checkpoint: {len(leftovers)} key(s) with no CLIP-ViT meaning "
        "(layer-scale, attention pooling or another architecture?); nothing was written:",
        [f"unexpected key {k} {common.shape_str(sd[k].shape)}" for k in leftovers])
  return out


def detect_and_normalise(sd: Mapping[str, np.ndarray], file_format: str,
                         report: common.Report) -> tuple[dict[str, np.ndarray], str]:
  """Returns (extracted-visual state dict, layout name); text-tower keys go to report.dropped."""
  keys = set(sd)
  if any(k.startswith("backbone.") for k in keys) or "cls_head.fc_cls.weight" in keys:
    raise common.ConversionError(
        "this is a UniFormerV2 video checkpoint (backbone.* keys), not CLIP: use "
        "`python -m convert uniformerv2`")
  if any("modulation.f.weight" in k for k in keys):
    raise common.ConversionError("this is a FocalNet checkpoint, not CLIP: use "
                                 "`python -m convert focalnet` or `video-focalnet`")
  if "vision_model.embeddings.patch_embedding.weight" in keys:
    return _from_hf(sd, report), ("hf-clip (Hugging Face CLIPVisionModel / CLIPModel, "
                                  "vision_model.*)")
  if "visual.conv1.weight" in keys:
    layout = ("openai-torchscript (OpenAI CLIP TorchScript archive, visual.* + text tower)"
              if file_format == "torchscript" else
              "clip-state-dict (open_clip / OpenAI CLIP state dict, visual.* + text tower)")
    visual, unknown = {}, []
    for k, v in sd.items():
      if k.startswith("visual."):
        visual[k[len("visual."):]] = v
        report.renamed[k] = k[len("visual."):]
      elif k in TEXT_EXACT or k.startswith(TEXT_PREFIXES):
        report.dropped.append(f"{k} (text tower / metadata)")
      else:
        unknown.append(f"unexpected key {k} {common.shape_str(v.shape)}")
    if unknown:
      raise common.ConversionError(
          f"{layout}: {len(unknown)} key(s) neither visual.* nor CLIP text tower; nothing was "
          "written:", unknown)
    if any(k.startswith("trunk.") for k in visual):
      raise common.ConversionError(
          "open_clip checkpoint with a timm trunk (visual.trunk.*): only OpenAI-style CLIP ViTs "
          "(visual.conv1, visual.transformer.resblocks.N) have UniFormerV2 counterparts")
    return visual, layout
  if "conv1.weight" in keys and "transformer.resblocks.0.attn.in_proj_weight" in keys:
    return dict(sd), "clip-visual (extracted CLIP visual state dict, as UniFormerV2's vit_b16.pth)"
  raise common.ConversionError(
      "unrecognised checkpoint: expected CLIP ViT keys (conv1.weight, visual.conv1.weight or "
      "vision_model.embeddings.patch_embedding.weight); first keys:",
      [f"{k} {common.shape_str(sd[k].shape)}" for k in sorted(keys)[:12]])


def describe_vit(width: int, patch: int, layers: int, positions: int) -> str:
  grid = int(round((positions - 1) ** 0.5))
  name = KNOWN_VITS.get((width, patch, layers), f"ViT (patch {patch})")
  return (f"{name} at {grid * patch} px (width {width}, {layers} layers, "
          f"{positions} positions)")


def _vit_of(sd: Mapping[str, Any], prefix: str, key_layers: str) -> tuple[int, int, int, int]:
  """(width, patch, layers, positions) of a visual state dict or a key -> shape table."""
  def shape(k):
    if prefix + k not in sd:
      raise common.ConversionError(f"CLIP visual weights without {k}: not a CLIP ViT")
    x = sd[prefix + k]
    return tuple(x) if isinstance(x, tuple) else tuple(np.shape(x))
  return (shape("class_embedding")[0], shape("conv1.weight")[-1],
          _num_blocks(sd, prefix + key_layers), shape("positional_embedding")[0])


def inflate(w2d: np.ndarray, time_dim: int, mode: str) -> np.ndarray:
  """Official ``inflate_weight``: (O, I, p, p) -> (O, I, time_dim, p, p), centre or average."""
  if mode == "center":
    w3d = np.zeros(w2d.shape[:2] + (time_dim,) + w2d.shape[2:], w2d.dtype)
    w3d[:, :, time_dim // 2] = w2d
    return w3d
  if mode == "average":
    return np.repeat(w2d[:, :, None] / time_dim, time_dim, axis=2).astype(w2d.dtype)
  raise ValueError(f"--inflate {mode!r}: expected 'center' or 'average'")


def convert(src: str, model_config: Any, *, out: str | None = None, labels: str | None = None,
            inflate_mode: str = "center", seed: int = 0, overwrite: bool = False):
  """CLIP file -> UniFormerV2 model (and checkpoint at ``out``). Returns (model, report)."""
  model_config = common.model_config_from(model_config, "uniformerv2")
  sd, source = common.read_source(src)
  report = common.Report(command="clip", layout="", target="", source=source.to_dict())
  visual, report.layout = detect_and_normalise(sd, source.file_format, report)

  _, cfg = common.architecture(model_config)
  layout = common.layout_module("uniformerv2")
  shapes = {k: tuple(v) for k, v in layout.official_shapes(cfg).items()}
  have = _vit_of(visual, "", "transformer.resblocks.")
  want = _vit_of(shapes, "backbone.", "transformer.resblocks.")
  report.target = f"uniformerv2 {describe_vit(*want)}, {cfg.num_classes} classes"
  if have != want:
    raise common.ConversionError(
        f"checkpoint is {describe_vit(*have)} but the config builds {describe_vit(*want)} "
        f"(model.variant={getattr(cfg, 'variant', '?')!r}): pick the config of the matching "
        "backbone (e.g. configs/uniformerv2/*l14* for ViT-L/14, *336* for 336 px weights)")

  for k in DROPPED_VISUAL:
    if k in visual:
      report.dropped.append(f"{k} (CLIP head, unused by UniFormerV2)")
  given = {k: v.shape for k, v in visual.items() if k not in DROPPED_VISUAL}
  expected = {k: shapes["backbone." + k] for k in visual_keys(want[2])}
  t_conv = expected["conv1.weight"]
  if len(given.get("conv1.weight", ())) == 4 and len(t_conv) == 5:
    given["conv1.weight"] = given["conv1.weight"][:2] + (t_conv[2],) + given["conv1.weight"][2:]
  common.strict_compare(given, expected, f"{report.layout} -> UniFormerV2 backbone")

  model, cfg, layout, official = common.fresh_model(model_config, seed)
  for k in visual_keys(want[2]):
    v = visual[k]
    if k == "conv1.weight" and v.ndim == 4:
      v = inflate(v, t_conv[2], inflate_mode)
      how = ("reshaped" if t_conv[2] == 1 else
             f"{inflate_mode} inflation into {t_conv[2]} time slots")
      report.inflated.append(f"backbone.conv1.weight {common.shape_str(visual[k].shape)} -> "
                             f"{common.shape_str(v.shape)} ({how})")
    else:
      report.copied.append("backbone." + k)
    official["backbone." + k] = np.asarray(v, np.float32)
  common.finish(model, cfg, layout, official, model_config, report, out, labels, overwrite,
                written=["backbone." + k for k in visual_keys(want[2])])
  return model, report
