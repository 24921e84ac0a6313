"""Demo UniFormerV2: the released Sth-Sth design (local + global UniBlocks, temporal
downsampling) at toy size, trained from scratch on the synthetic motion videos on a CPU.

    python -m vidjax.data.synthetic --out /tmp/synth
    python experiments/train.py --config configs/demo/uniformerv2.py:/tmp/synth --workdir /tmp/run

The argument is the folder written by ``vidjax.data.synthetic`` (``train.txt``, ``val.txt``,
``classes.txt``). ``--config.model.no_lmhra=True --config.model.n_layers=0`` is the per-frame
ablation (no local temporal MHRA, no global blocks: frame-mean CLS token).
"""

from vidjax.configs import demo


def get_config(arg=None):
  return demo.uniformerv2(arg)
