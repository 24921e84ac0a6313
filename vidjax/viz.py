"""What the networks look at: UniFormerV2 class activation maps (paper Fig. 4) and global-block
attention, Video-FocalNet spatial / temporal modulators (paper Fig. 7), drawn as a PNG grid and
an animated GIF.

Every map comes from the models' documented ``capture`` switch (``Model.__call__`` of
``vidjax.models.uniformerv2`` / ``video_focalnet``), which returns intermediate values beside the
unchanged logits:

* ``cam`` (UniFormerV2): a gradient-weighted class activation map on the last backbone block's
  patch tokens A [T', h, w, C], ``relu(sum_c dy_k/dA_c * A_c)`` per token: HiResCAM (Draelos &
  Carin, 2020, arXiv:2011.08891), i.e. Grad-CAM (Selvaraju et al., ICCV 2017) with the gradient
  kept per token instead of averaged over (t, h, w) first. The gradient is ``jax.grad`` of the
  logit y_k with respect to the model's ``token_delta`` (added to those tokens before any later
  layer reads them), so it flows through the real global UniBlocks, fusion and head. (Averaged
  weights, plain Grad-CAM, spread the evidence of the few object tokens over the background: on
  16 synthetic motion videos and the demo UniFormerV2, mean map inside / outside the moving
  polygon is 1.2 with them and 3.4 per token.)
* ``attention`` (UniFormerV2): per global UniBlock ``dec[j]``, the C_MHRA affinities of the
  video query to the patch tokens (Eq. 11-13), averaged over heads (and queries).
* ``modulators`` (Video-FocalNet): per stage (its last block), the channel mean of
  ``|h(ctx_s)|`` and ``|h_temporal(ctx_t)|`` (Eq. 8-9) per frame.

Maps are min-max normalised over the whole clip (all frames of one row together, so frames stay
comparable), then upsampled to the clip: ``[T, H, W]`` in [0, 1].
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vidjax.models import uniformerv2, video_focalnet

KINDS = {"uniformerv2": ("cam", "attention"), "video_focalnet": ("modulators",)}


@dataclasses.dataclass
class Maps:
  """The maps of one clip: ``rows[name]`` [T, H, W] in [0, 1], and the clip's class scores."""
  kind: str
  rows: dict[str, np.ndarray]
  probs: np.ndarray  # softmax of the logits [num_classes]
  class_index: int  # the class the maps are for (``cam``) / the prediction (other kinds)


def network_of(model: nnx.Module) -> str:
  if isinstance(model, uniformerv2.Model):
    return "uniformerv2"
  if isinstance(model, video_focalnet.Model):
    return "video_focalnet"
  raise TypeError(f"expected a UniFormerV2 or Video-FocalNet model, got {type(model).__name__}")


def normalize(m: np.ndarray) -> np.ndarray:
  """Min-max over the whole array to [0, 1] (a constant map is all zeros)."""
  m = np.asarray(m, np.float32)
  lo, hi = float(m.min()), float(m.max())
  return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def upsample(m: np.ndarray, num_frames: int, size: tuple[int, int]) -> np.ndarray:
  """[T', h, w] -> [T, H, W]: frame i reads map i // (T / T') (a tubelet / temporal stride
  covers T / T' frames), bilinear in space."""
  from PIL import Image
  t = m.shape[0]
  if num_frames % t:
    raise ValueError(f"{num_frames} frames are not a multiple of the {t} map frames")
  frames = [np.asarray(Image.fromarray(np.asarray(f, np.float32)).resize(
      (size[1], size[0]), Image.BILINEAR)) for f in m]
  return np.clip(np.repeat(np.stack(frames), num_frames // t, axis=0), 0.0, 1.0)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _run(fn, graphdef: nnx.GraphDef, state: nnx.State, *args):
  """``fn(model, *args)`` compiled once per (fn, model structure, argument shapes)."""
  return fn(nnx.merge(graphdef, state), *args)


def _cam(m: uniformerv2.Model, x: jax.Array, target: jax.Array):
  logits = m(x)
  k = jnp.where(target < 0, jnp.argmax(logits, -1), target)

  def score(delta):
    out, captured = m(x, capture=True, token_delta=delta)
    return jnp.take_along_axis(out, k[:, None], 1).sum(), captured["tokens"]

  zeros = jnp.zeros(m.token_shape(x.shape[0]), jnp.float32)
  grads, tokens = jax.grad(score, has_aux=True)(zeros)  # both [B, T', h, w, C]
  return logits, k, jax.nn.relu((grads * tokens.astype(jnp.float32)).sum(-1))


def _attention(m: uniformerv2.Model, x: jax.Array):
  logits, captured = m(x, capture=True)
  cfg = m.cfg
  t, hw = cfg.frames_after_stem, cfg.grid ** 2
  rows = []
  for w in captured["attention"]:  # [B, n_head, Q, (extra) + T'·(1 + hw)]
    w = w.mean(axis=(1, 2))[:, w.shape[-1] - t * (1 + hw):]  # drop a prepended video token
    rows.append(w.reshape(-1, t, 1 + hw)[:, :, 1:].reshape(-1, t, cfg.grid, cfg.grid))
  return logits, rows


def _modulators(m: video_focalnet.Model, x: jax.Array):
  logits, captured = m(x, capture=True)
  rows = {f"{stage} {kind}": jnp.abs(v.astype(jnp.float32)).mean(-1)  # [B, T', Hs, Ws]
          for stage, maps in captured.items() for kind, v in sorted(maps.items())}
  return logits, rows


def compute(model: nnx.Module, x: jax.Array, kind: str, class_index: int | None = None) -> Maps:
  """Maps of one normalised clip ``x`` [1, T, H, W, 3] (what the model's forward takes).

  ``class_index``: the class of the CAM (default: the predicted one); other kinds always show
  the prediction.
  """
  name = network_of(model)
  if kind not in KINDS[name]:
    raise ValueError(f"kind {kind!r} is not available for {name} (expected one of "
                     f"{list(KINDS[name])})")
  if x.ndim != 5 or x.shape[0] != 1:
    raise ValueError(f"expected one clip [1, T, H, W, 3], got {tuple(x.shape)}")
  num_frames, size = x.shape[1], tuple(x.shape[2:4])
  if kind == "cam":
    target = jnp.asarray([-1 if class_index is None else class_index], jnp.int32)
    logits, k, cam = _run(_cam, *nnx.split(model), x, target)
    raw, k = {"CAM": cam}, int(k[0])
  elif kind == "attention":
    logits, rows = _run(_attention, *nnx.split(model), x)
    raw = {f"dec[{j}]": r for j, r in enumerate(rows)}
    raw["mean"] = sum(rows) / len(rows)
  else:
    logits, raw = _run(_modulators, *nnx.split(model), x)
  probs = np.asarray(jax.nn.softmax(logits[0].astype(jnp.float32)))
  if kind != "cam":
    k = int(np.argmax(probs))
  rows = {n: upsample(normalize(np.asarray(r[0])), num_frames, size) for n, r in raw.items()}
  return Maps(kind, rows, probs, k)


# ---------------------------------------------------------------------------------------------
# Drawing.

def overlay(frame: np.ndarray, m: np.ndarray) -> np.ndarray:
  """uint8 [H, W, 3]: ``frame`` under the jet colours of ``m`` [H, W] in [0, 1], more opaque
  where ``m`` is high (0.2 at 0 to 0.7 at 1), so the frame stays visible under low values."""
  from matplotlib import colormaps
  m = np.clip(m, 0.0, 1.0)[..., None]
  heat = colormaps["jet"](m[..., 0])[..., :3] * 255.0
  alpha = 0.2 + 0.5 * m
  return np.clip((1 - alpha) * frame.astype(np.float32) + alpha * heat, 0, 255).astype(np.uint8)


def save_png(path: str, frames: np.ndarray, maps: Maps, title: str) -> str:
  """A grid: the frames along the top row, one overlaid row per map below."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  t = frames.shape[0]
  names = list(maps.rows)
  fig, axes = plt.subplots(1 + len(names), t, figsize=(1.6 * t + 1.2, 1.6 * (1 + len(names))),
                           squeeze=False)
  for row, name in enumerate(["frames"] + names):
    for i in range(t):
      ax = axes[row, i]
      ax.imshow(frames[i] if row == 0 else overlay(frames[i], maps.rows[name][i]))
      ax.set_xticks([])
      ax.set_yticks([])
      if row == 0:
        ax.set_title(f"t={i}", fontsize=8)
    axes[row, 0].set_ylabel(name, fontsize=8)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def save_gif(path: str, frames: np.ndarray, maps: Maps, panel: int = 160,
             duration_ms: int = 250) -> str:
  """An animated GIF: per frame, the frame and its overlays tiled in a near-square grid."""
  from PIL import Image
  panels = [frames] + [np.stack([overlay(f, m) for f, m in zip(frames, r)])
                       for r in maps.rows.values()]
  cols = int(np.ceil(np.sqrt(len(panels))))
  rows = int(np.ceil(len(panels) / cols))
  h, w = frames.shape[1:3]
  ph, pw = (panel, round(panel * w / h)) if h >= w else (round(panel * h / w), panel)
  images = []
  for i in range(frames.shape[0]):
    canvas = Image.new("RGB", (cols * pw, rows * ph))
    for j, p in enumerate(panels):
      tile = Image.fromarray(p[i]).resize((pw, ph), Image.BILINEAR)
      canvas.paste(tile, ((j % cols) * pw, (j // cols) * ph))
    images.append(canvas)
  images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
  return path


def write(out_dir: str, stem: str, frames: np.ndarray, maps: Maps,
          class_names: Sequence[str]) -> list[str]:
  """``out_dir/<stem>_<kind>.png`` and ``.gif``; returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  k = maps.class_index
  title = f"{stem}: {maps.kind} for '{class_names[k]}' (p={maps.probs[k]:.3f})"
  if maps.kind == "cam":
    top = int(np.argmax(maps.probs))
    if top != k:
      title += f"; predicted '{class_names[top]}' (p={maps.probs[top]:.3f})"
  base = os.path.join(out_dir, f"{stem}_{maps.kind}")
  return [save_png(base + ".png", frames, maps, title), save_gif(base + ".gif", frames, maps)]

