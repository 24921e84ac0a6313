r"""Renders the learning curves of training workdirs to PNG (matplotlib, no display needed).

    python experiments/plot.py runs/ssv2_b16            # -> runs/ssv2_b16/curves.png
    python experiments/plot.py runs/a runs/b --out cmp.png

Panels: training loss, learning rate, validation top-1 (when the run evaluated), clips/s. Reads
``metrics.jsonl`` (last line per step, so resumed runs plot once). The last output line is a JSON
object ``{"png": path, "steps": n}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vidjax.train import metrics as metrics_lib  # noqa: E402


def plot(workdirs: list[str], out: str) -> dict:
  fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
  steps = 0
  for wd in workdirs:
    rows = metrics_lib.read_metrics(wd)
    train = [r for r in rows if "split" not in r]
    val = [r for r in rows if r.get("split") == "val"]
    label = os.path.basename(os.path.normpath(wd))
    steps = max(steps, max((r["step"] for r in rows), default=0))
    for ax, key in zip(axes[[0, 1, 3]], ("loss", "lr", "clips_per_s")):
      pts = [(r["step"], r[key]) for r in train if isinstance(r.get(key), (int, float))]
      if pts:
        ax.plot(*zip(*pts), label=label)
    if val:
      axes[2].plot([r["step"] for r in val], [r["top1"] for r in val], "o-", label=label)
  for ax, title in zip(axes, ("train loss", "learning rate", "val top-1", "clips/s")):
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(out, dpi=100)
  plt.close(fig)
  return {"png": os.path.abspath(out), "steps": steps}


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("workdirs", nargs="+", help="training workdirs (with metrics.jsonl)")
  p.add_argument("--out", help="PNG path (default: WORKDIR/curves.png of the first workdir)")
  a = p.parse_args(argv)
  for wd in a.workdirs:
    if not os.path.isfile(os.path.join(wd, metrics_lib.METRICS_FILE)):
      print(f"error: {wd}: no {metrics_lib.METRICS_FILE} (not a training workdir?)",
            file=sys.stderr)
      return 2
  print(json.dumps(plot(a.workdirs, a.out or os.path.join(a.workdirs[0], "curves.png"))))
  return 0


if __name__ == "__main__":
  sys.exit(main())
