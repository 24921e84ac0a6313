"""python -m convert {clip,focalnet,uniformerv2,video-focalnet,export}: PyTorch weights <-> vidjax.

Run ``python -m convert COMMAND --help`` for the formats each command accepts.

No code from a source file runs (see ``convert.io``): pickles go through a restricted unpickler;
a class the file only instantiates becomes an inert placeholder (listed as skipped), a file that
calls anything else is refused naming the global; refused, truncated or corrupt files print one
``error:`` line and exit with code 2, writing nothing. TorchScript is never loaded with
``torch.jit.load``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap

from vidjax import cli

EPILOG = textwrap.dedent("""\
    Every conversion detects the source layout from its keys and says what it found, is strict
    (an unexpected key, a missing key or a shape mismatch aborts with every offending key and both
    shapes, and nothing is written), prints a report of copied / inflated / newly initialised /
    dropped keys and saves it as OUT/report.json beside the orbax checkpoint and OUT/vidjax.json.
    Load the result with:  model, info = vidjax.models.load(OUT)

    .pt/.pth/.pyth/.bin files need torch (pip install -e '.[convert]'); .safetensors files do not.
    Untrusted files are safe to convert: no code from the file runs. Every pickle in a
    .pt/.pth/.pyth/.bin file (torch.save zip or legacy format, TorchScript archive) is read by a
    restricted unpickler that never imports anything: tensors, plain containers, torch dtypes and
    numpy scalars/arrays load; any other class the file only instantiates (a yacs CfgNode, an
    argparse.Namespace) becomes an inert placeholder, its state discarded, listed as skipped; a
    file that calls any other function or class (eval, os.system, subprocess.Popen, getattr...)
    is refused: "error: FILE: refused global MODULE.NAME ...", exit code 2, nothing written.
    TorchScript archives are read as data, never with torch.jit.load (which compiles and runs
    the archive's code). A truncated or corrupt file: one line naming it, exit code 2.

    examples:
      python -m convert clip --src ViT-B-16.pt --config configs/uniformerv2/k400_b16_8x224.py --out weights/uniformerv2_b16_clip
      python -m convert focalnet --src focalnet_tiny_srf.pth --config configs/video_focalnet/k400_tiny.py --out weights/vfn_tiny_in1k
      python -m convert uniformerv2 --src k400_uniformerv2_b16_8x224.pyth --config configs/uniformerv2/k400_b16_8x224.py --out weights/uniformerv2_b16_k400 --labels k400_labels.txt
      python -m convert video-focalnet --src video-focalnet_base_k400.pth --config configs/video_focalnet/k400_base.py --out weights/vfn_base_k400
      python -m convert export --src weights/uniformerv2_b16_k400 --out uniformerv2_b16_k400.pth
    """)

HELP = {
    "clip": ("CLIP ViT (B/16, L/14, L/14@336) -> UniFormerV2 initialisation", """\
        accepted --src layouts (detected from the keys):
          openai-torchscript  OpenAI's ViT-B-16.pt / ViT-L-14.pt / ViT-L-14-336px.pt (TorchScript
                              archives of the whole CLIP model; their data.pkl is read as data,
                              the TorchScript code is never compiled or run)
          clip-state-dict     open_clip checkpoints or OpenAI state dicts: visual.* + text tower
                              (.pt / .bin / .safetensors; 'state_dict' nesting and 'module.' ok)
          clip-visual         the extracted visual dicts of UniFormerV2 (vit_b16.pth, vit_l14.pth,
                              vit_l14_336.pth: conv1.weight, transformer.resblocks.N..., with or
                              without proj / ln_post) and MMAction2's clipVisualEncoder files
          hf-clip             Hugging Face CLIPVisionModel / CLIPModel safetensors (vision_model.*)
        semantics (official UniFormerV2 loader): backbone weights copied; the 2-D patch kernel is
        inflated to the 3xpxp tubelet with the CLIP kernel in the centre time slot and zeros
        elsewhere (--inflate average: w/3 in every slot) when model.temporal_downsample is on;
        CLIP's proj, ln_post and text tower dropped; local/global blocks keep their (zero) init;
        the head is fresh. The checkpoint's ViT must match --config (B/16 vs L/14, 224 vs 336)."""),
    "focalnet": ("ImageNet FocalNet (T/S/B, srf) -> Video-FocalNet initialisation", """\
        accepted --src layouts (detected from the keys):
          microsoft   focalnet_{tiny,small,base}_srf.pth ({"model": state_dict}; patch_embed.*,
                      downsample at the end of each stage, head.*)
          timm        timm focalnet_*_srf weights (.pth/.bin/.safetensors; stem.*, downsample at
                      the start of the next stage, 1x1-conv shaped linears, head.fc.*)
        semantics (official Video-FocalNet main.py): every spatial key copied unchanged; the
        temporal keys (f_temporal, h_temporal, focal_layers_temporal) keep their fresh init; the
        head is re-drawn trunc_normal(std=.02), bias too. lrf weights (3 focal levels) are
        refused: the released video models are srf (2 levels)."""),
    "uniformerv2": ("released UniFormerV2 video checkpoint -> vidjax", """\
        accepted --src layouts (detected from the keys):
          official           model-zoo .pyth: flat backbone.* state dict; or a training
                             checkpoint with the weights under 'model_state' (the pickled cfg is
                             not executed). Sth-Sth files carry BatchNorm running statistics.
          mmaction2          MMAction2 re-hosting: backbone.transformer.norm.* (= proj.0) and
                             cls_head.fc_cls.* (= proj.2), under 'state_dict'
          official-backbone  the same keys without the backbone. prefix
        The class count is read from the head; --config must match the checkpoint's family
        (B/16 vs L/14, Kinetics (global blocks only) vs Sth-Sth (local MHRA, temporal
        downsample))."""),
    "video-focalnet": ("released Video-FocalNet checkpoint -> vidjax", """\
        accepted --src layout:
          official   video-focalnet_{tiny,small,base}_<dataset>.pth: {"model": state_dict,
                     "optimizer": ..., "config": <yacs CfgNode>}; only the tensors under 'model'
                     are loaded, the pickled config is replaced by an inert placeholder.
        The class count is read from head.weight; --config must match the variant."""),
    "export": ("vidjax checkpoint -> official PyTorch state-dict layout", """\
        --src is a vidjax checkpoint directory, --out a .pth/.pyth (needs torch) or .safetensors
        file. UniFormerV2 is written as the zoo's flat backbone.* dict, Video-FocalNet as
        {"model": state_dict}; the official PyTorch code loads them with strict=True."""),
}


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="python -m convert", description="Import PyTorch CLIP / FocalNet / UniFormerV2 / "
      "Video-FocalNet weights into vidjax (Flax NNX) checkpoints, and export them back.",
      epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
  for name, (short, long) in HELP.items():
    s = sub.add_parser(name, help=short, description=short + "\n\n" + textwrap.dedent(long),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--src", required=True, help="source file" if name != "export" else
                   "vidjax checkpoint directory")
    s.add_argument("--out", required=True, help="output directory (a vidjax checkpoint)"
                   if name != "export" else "output .pth/.pyth/.safetensors file")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    if name == "export":
      continue
    s.add_argument("--config", required=True, metavar="FILE[:arg]",
                   help="experiment config file whose get_config().model describes the target "
                   "model, e.g. configs/uniformerv2/k400_b16_8x224.py ('file.py:arg' passes arg); "
                   "--config.a.b=value overrides a field, e.g. --config.model.num_classes=37 "
                   "(ml_collections.config_flags)")
    s.add_argument("--labels", help="class names: a text file with one name per line (or "
                   "'name index' lines), or a JSON list; stored in vidjax.json")
    s.add_argument("--seed", type=int, default=0,
                   help="seed of the fresh initialisation of keys the source does not provide")
    s.add_argument("--verbose", action="store_true", help="list every key in the report")
    if name == "clip":
      s.add_argument("--inflate", choices=("center", "average"), default="center",
                     help="2-D -> 3-D patch kernel: CLIP kernel in the centre time slot, zeros "
                     "elsewhere (official), or w/T in every slot")
  return p


def main(argv: list[str] | None = None) -> int:
  argv, overrides = cli.split_overrides(sys.argv[1:] if argv is None else argv)
  args = _parser().parse_args(argv)
  from convert import clip, common, focalnet, uniformerv2, video_focalnet
  if args.command == "export":
    if overrides:
      print(f"error: export takes no --config overrides: {overrides}", file=sys.stderr)
      return 2
    try:
      summary = common.export(args.src, args.out, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError, ImportError) as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
    print(json.dumps(summary, indent=1))
    return 0
  if os.path.exists(args.out) and not args.overwrite:
    print(f"error: --out {args.out} already exists (pass --overwrite to replace it)",
          file=sys.stderr)
    return 2
  kwargs = dict(out=args.out, labels=args.labels, overwrite=args.overwrite, seed=args.seed)
  if args.command == "clip":
    kwargs["inflate_mode"] = args.inflate
  fn = {"clip": clip.convert, "focalnet": focalnet.convert, "uniformerv2": uniformerv2.convert,
        "video-focalnet": video_focalnet.convert}[args.command]
  try:
    config = common.load_config_file(args.config, overrides)
    _, report = fn(args.src, config, **kwargs)
  except (FileNotFoundError, ValueError, ImportError) as e:  # ConversionError, ConfigError too
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(report.summary(verbose=args.verbose))
  return 0


if __name__ == "__main__":
  sys.exit(main())
