"""Demo Video-FocalNet: the released spatio-temporal design at toy size (widths 24-192, depths
1/1/2/1), trained from scratch on the synthetic motion videos on a CPU.

    python -m vidjax.data.synthetic --out /tmp/synth
    python experiments/train.py --config configs/demo/video_focalnet.py:/tmp/synth --workdir /tmp/run

The argument is the folder written by ``vidjax.data.synthetic``. ``--config.model.design=
spatial_only`` is the per-frame ablation (paper Fig. 4a: image FocalNet, frame mean).
"""

from vidjax.configs import demo


def get_config(arg=None):
  return demo.video_focalnet(arg)
