r"""The CPU demo: both networks learn motion that no single frame shows; their per-frame ablations
cannot.

    python experiments/demo.py --workdir /tmp/vidjax-demo

1. Writes the synthetic motion dataset (``vidjax.data.synthetic.HORIZONTAL``: a bright polygon
   moving right or left, crossing the frame once or twice per clip, over a random dark gradient
   background with static distractors; 40x40 videos of 16 frames) to ``WORKDIR/data`` on first
   use. Every class visits the same positions, so no single frame, nor the set of frames, tells
   the classes apart: only their order does.
2. Trains ``configs/demo/uniformerv2.py`` and ``configs/demo/video_focalnet.py`` with the
   training loop of ``experiments/train.py`` (workdirs ``WORKDIR/uniformerv2`` and
   ``WORKDIR/video_focalnet``, usable by ``evaluate.py``, ``infer.py``, ``visualize.py``), and
   the same models with their temporal modules off (the papers' ablation): UniFormerV2 without
   local MHRA, global blocks and the 3-frame tubelet stem (per-frame CLIP + frame mean),
   Video-FocalNet ``spatial_only``
   (Fig. 4a). Rerunning resumes / reuses finished runs.
3. Evaluates each multi-view (2 clips) on the held-out split and runs ``infer.py`` on one held-out
   video; draws ``WORKDIR/demo.png`` (learning curves and the four accuracies).

The last output line is one JSON object: per network ``top1`` and ``ablation_top1``, plus
``wall_s``. ``--quick`` runs a few steps on a tiny dataset (the tests), without accuracy claims.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (data, runs, demo.png).")
_QUICK = flags.DEFINE_boolean("quick", False, "A few steps on a tiny dataset (smoke test).")
flags.mark_flags_as_required(["workdir"])

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = {  # name -> (config file, overrides of the ablation)
    "uniformerv2": ("configs/demo/uniformerv2.py", {}),
    "uniformerv2_ablation": ("configs/demo/uniformerv2.py",
                             {"model.no_lmhra": True, "model.n_layers": 0,
                              "model.return_list": (), "model.mlp_dropout": (),
                              "model.temporal_downsample": False}),
    "video_focalnet": ("configs/demo/video_focalnet.py", {}),
    "video_focalnet_ablation": ("configs/demo/video_focalnet.py",
                                {"model.design": "spatial_only"}),
}


def make_data(root: str, quick: bool) -> None:
  """The synthetic dataset in ``root`` (skipped when it is already complete)."""
  import tqdm
  from vidjax.configs import demo
  from vidjax.data import synthetic
  splits = {"train": 3 if quick else demo.TRAIN_PER_CLASS,
            "val": 1 if quick else demo.VAL_PER_CLASS}
  if all(os.path.isfile(os.path.join(root, f"{s}.txt")) for s in splits):
    return
  total = sum(splits.values()) * demo.NUM_CLASSES
  with tqdm.tqdm(total=total, desc="synthetic videos", unit="video", file=sys.stderr) as bar:
    done = 0
    for i, (split, n) in enumerate(splits.items()):
      synthetic.write_dataset(root, n, num_classes=demo.NUM_CLASSES,
                              num_frames=demo.VIDEO_FRAMES,
                              height=demo.VIDEO_SIZE, width=demo.VIDEO_SIZE, split=split,
                              seed=1000 * i, motions=synthetic.HORIZONTAL,
                              progress=lambda k, base=done: bar.update(base + k - bar.n))
      done += n * demo.NUM_CLASSES


def load(config_file: str, root: str, overrides: dict, quick: bool):
  import importlib.util
  spec = importlib.util.spec_from_file_location("demo_config", os.path.join(ROOT, config_file))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(root)
  for key, value in overrides.items():
    section, field = key.split(".")
    config[section][field] = value
  if quick:
    config.num_train_steps = 3
    config.log_every_steps = 1
  return config


def plot(workdir: str, results: dict) -> str:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from vidjax.configs import demo
  from vidjax.train import metrics
  fig, (ax_u, ax_f, ax_acc) = plt.subplots(1, 3, figsize=(15, 4))
  for name, ax in (("uniformerv2", ax_u), ("video_focalnet", ax_f)):
    for run, style in ((name, "-"), (name + "_ablation", "--")):
      rows = [r for r in metrics.read_metrics(os.path.join(workdir, run)) if "split" not in r]
      ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], style,
              label=run.replace("_", " "))
    ax.set_title(f"{name}: training loss")
    ax.set_xlabel("step")
    ax.legend()
    ax.grid(alpha=0.3)
  names = list(results)
  x = range(len(names))
  ax_acc.bar([i - 0.2 for i in x], [results[n]["top1"] for n in names], 0.4, label="full model")
  ax_acc.bar([i + 0.2 for i in x], [results[n]["ablation_top1"] for n in names], 0.4,
             label="temporal modules off")
  ax_acc.axhline(1 / demo.NUM_CLASSES, color="gray", linestyle=":", label="chance")
  ax_acc.set_xticks(list(x), names)
  ax_acc.set_ylim(0, 1.2)  # room above the bars for the legend
  ax_acc.set_title("held-out top-1 (2 clips per video)")
  ax_acc.legend(fontsize=8, loc="upper center", ncol=3)
  fig.tight_layout()
  path = os.path.join(workdir, "demo.png")
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def main(argv: list[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  from vidjax.train import evaluate, loop, metrics
  metrics.quiet_library_logs()
  start = time.time()
  workdir, quick = os.path.abspath(_WORKDIR.value), _QUICK.value
  root = os.path.join(workdir, "data")
  make_data(root, quick)
  top1 = {}
  for run, (config_file, overrides) in RUNS.items():
    config = load(config_file, root, overrides, quick)
    run_dir = os.path.join(workdir, run)
    loop.train_and_evaluate(config, run_dir, progress=True)
    top1[run] = evaluate.evaluate_checkpoint(config, run_dir, log=lambda s: None)["top1"]
    print(f"{run}: held-out top-1 {top1[run]:.3f}", file=sys.stderr)
  video = next(line.split()[0] for line in open(os.path.join(root, "val.txt")))
  infer = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "infer.py"), "--checkpoint",
       os.path.join(workdir, "uniformerv2"), "--video", os.path.join(root, video), "--top_k", "3"],
      capture_output=True, text=True)
  if infer.returncode != 0:
    print(f"error: infer.py failed: {infer.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    return 1
  print(f"infer.py on {video}:", file=sys.stderr)
  print(infer.stdout.strip(), file=sys.stderr)
  results = {name: {"top1": top1[name], "ablation_top1": top1[name + "_ablation"]}
             for name in ("uniformerv2", "video_focalnet")}
  results["infer"] = json.loads(infer.stdout.strip().splitlines()[-1])
  plot(workdir, {k: v for k, v in results.items() if k != "infer"})
  results["wall_s"] = round(time.time() - start, 1)
  print(json.dumps(results))
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
