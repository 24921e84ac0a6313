"""Shared pieces of every conversion: strict key checks, the report, configs, labels, output.

A conversion is: read the file (``convert.io``) -> detect its layout and normalise its keys to the
official PyTorch layout of the target model -> start from the official state dict of a freshly
initialised Flax model (``<arch>_layout.from_flax``) -> overwrite what the checkpoint provides ->
``to_flax`` -> assign -> ``vidjax.models.checkpoint.save`` (atomic) with ``report.json`` beside it.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from convert import io
from vidjax import cli


class ConversionError(ValueError):
  """Strict-mode failure; the message names every offending key (nothing is written)."""

  def __init__(self, title: str, problems: Iterable[str] = (), hint: str = ""):
    self.title, self.problems, self.hint = title, list(problems), hint
    lines = [title] + [f"  {p}" for p in self.problems]
    if hint:
      lines.append(hint)
    super().__init__("\n".join(lines))


def shape_str(shape: Iterable[int]) -> str:
  return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def strict_compare(given: Mapping[str, tuple], expected: Mapping[str, tuple], what: str,
                   hint: str = "") -> None:
  """Raises :class:`ConversionError` listing every unexpected / missing / mis-shaped key."""
  unexpected = sorted(set(given) - set(expected))
  missing = sorted(set(expected) - set(given))
  mismatched = sorted(k for k in set(given) & set(expected)
                      if tuple(given[k]) != tuple(expected[k]))
  if not (unexpected or missing or mismatched):
    return
  problems = [f"unexpected key {k} {shape_str(given[k])}" for k in unexpected]
  problems += [f"missing key {k} (expected {shape_str(expected[k])})" for k in missing]
  problems += [f"shape mismatch {k}: checkpoint {shape_str(given[k])} vs model "
               f"{shape_str(expected[k])}" for k in mismatched]
  raise ConversionError(
      f"{what}: {len(unexpected)} unexpected, {len(missing)} missing, {len(mismatched)} "
      "mis-shaped key(s); nothing was written:", problems, hint)


def key_patterns(keys: Iterable[str]) -> list[str]:
  """Compresses keys for hints: digits become {n}, with counts."""
  counts: dict[str, int] = {}
  for k in keys:
    p = re.sub(r"\.\d+(?=\.|$)", ".{n}", k)
    counts[p] = counts.get(p, 0) + 1
  return [f"{p} x{n}" if n > 1 else p for p, n in sorted(counts.items())]


@dataclasses.dataclass
class Report:
  """What a conversion did, key by key (official PyTorch names of the target model)."""
  command: str
  layout: str                      # the detected source layout, in words
  target: str                      # e.g. "uniformerv2 (ViT-B/16, 4 global blocks, 400 classes)"
  source: dict[str, Any]
  copied: list[str] = dataclasses.field(default_factory=list)
  inflated: list[str] = dataclasses.field(default_factory=list)
  initialised: list[str] = dataclasses.field(default_factory=list)   # kept the fresh init
  reinitialised: list[str] = dataclasses.field(default_factory=list)  # set by the converter (head)
  dropped: list[str] = dataclasses.field(default_factory=list)        # source keys not used
  renamed: dict[str, str] = dataclasses.field(default_factory=dict)   # source key -> official key
  notes: list[str] = dataclasses.field(default_factory=list)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def counts(self) -> dict[str, int]:
    return {k: len(getattr(self, k)) for k in
            ("copied", "inflated", "initialised", "reinitialised", "dropped", "renamed")}

  def summary(self, verbose: bool = False) -> str:
    s = self.source
    lines = [f"source:   {s['path']}", f"          sha256 {s['sha256']}, {s['file_format']}"
             + (f", container {s['container']}" if s.get("container") else "")
             + (f", stripped prefix {s['stripped_prefix']!r}" if s.get("stripped_prefix") else ""),
             f"detected: {self.layout}", f"target:   {self.target}"]
    for item in s.get("skipped", []):
      lines.append(f"skipped:  {item}")
    for note in list(s.get("notes", [])) + self.notes:
      lines.append(f"note:     {note}")
    for name, title in (("copied", "copied"), ("inflated", "inflated"),
                        ("initialised", "newly initialised (kept the model's init)"),
                        ("reinitialised", "re-initialised by the converter"),
                        ("dropped", "dropped from the source")):
      keys = getattr(self, name)
      if not keys:
        continue
      shown = keys if (verbose or name in ("inflated", "reinitialised")) else key_patterns(keys)
      lines.append(f"{title}: {len(keys)}")
      lines += [f"    {k}" for k in shown]
    if self.renamed:
      lines.append(f"renamed: {len(self.renamed)} source keys (see report.json)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- configs
def load_config_file(path: str, overrides: Sequence[str] = ()) -> Any:
  """``get_config()`` of ``file.py[:arg]`` with ``--config.a.b=value`` ``overrides``.

  ``vidjax.cli.load_config`` (ml_collections.config_flags); a bad file, field or value raises
  ``vidjax.cli.ConfigError`` (a ValueError) with one line naming it.
  """
  return cli.load_config(path, overrides, lock_config=False)


def model_config_from(config: Any, expected_name: str):
  """``config.model`` as an unlocked ConfigDict copy; checks ``model.name``."""
  import ml_collections
  if isinstance(config, str):
    config = load_config_file(config)
  model = config.model if hasattr(config, "model") and not isinstance(config, Mapping) else (
      config.get("model", config) if isinstance(config, Mapping) else config)
  d = model.to_dict() if hasattr(model, "to_dict") else dict(model)
  if d.get("name") != expected_name:
    raise ValueError(f"config model.name={d.get('name')!r}, but this converter builds "
                     f"{expected_name!r}: pass a configs/{expected_name}/*.py config")
  return ml_collections.ConfigDict(d)


def architecture(model_config: Any):
  """(module, frozen Config) for ``config.model``."""
  from vidjax import models
  name = model_config["name"]
  return models.ARCHITECTURES[name], models.model_config(model_config)


def layout_module(name: str):
  """``convert.<name>_layout``: the official key/shape table of an architecture."""
  return importlib.import_module(f"convert.{name}_layout")


# ---------------------------------------------------------------------------------- labels
def read_labels(path: str | None, num_classes: int) -> list[str] | None:
  """Class names from a text file (one per line, or ``name index`` lines) or a JSON list."""
  if path is None:
    return None
  with open(path) as f:
    text = f.read()
  if path.endswith(".json"):
    data = json.loads(text)
    if isinstance(data, dict):   # {"name": index}
      names = [None] * len(data)
      for name, i in data.items():
        names[int(i)] = name
    else:
      names = [str(x) for x in data]
  else:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    pairs = [re.match(r"^(.*\S)[\s,]+(\d+)$", ln) for ln in lines]
    idx = [int(m.group(2)) for m in pairs] if all(pairs) else None
    # "riding a bike 0" lines (MMAction2 / UniFormerV2 label maps) only if the names come out
    # unique; otherwise the numbers belong to the names ("class 0", "class 1", ...).
    if (idx is not None and sorted(idx) == list(range(len(lines)))
        and len({m.group(1) for m in pairs}) == len(lines)):
      names = [None] * len(lines)
      for m, i in zip(pairs, idx):
        names[i] = m.group(1)
    else:
      names = lines
  if len(names) != num_classes or any(n is None for n in names):
    raise ValueError(f"--labels {path}: {len(names)} class names, but the model has "
                     f"{num_classes} classes")
  return names


# ---------------------------------------------------------------------------------- building
def fresh_model(model_config: Any, seed: int):
  """A freshly initialised Flax model, its layout module and its official PyTorch state dict."""
  from flax import nnx

  from vidjax import models
  from vidjax.models import checkpoint
  _, cfg = architecture(model_config)
  layout = layout_module(model_config["name"])
  model = models.create(model_config, rngs=nnx.Rngs(seed))
  official = layout.from_flax(checkpoint.flat_weights(model), cfg)
  return model, cfg, layout, official


def finish(model, cfg, layout, official: Mapping[str, np.ndarray], model_config, report: Report,
           out: str | None, labels: str | None, overwrite: bool = False, *,
           written: Iterable[str]) -> str | None:
  """official dict -> Flax (strict) -> model -> atomic save with vidjax.json + report.json.

  Keys of ``official`` not in ``written`` (the ones the source provided) are reported as newly
  initialised; ``labels`` is the --labels file (:func:`read_labels`).
  """
  from vidjax.models import checkpoint
  written = set(written)
  report.initialised = sorted(k for k in official if k not in written)
  names = read_labels(labels, cfg.num_classes)
  checkpoint.assign_flat(model, layout.to_flax(official, cfg))
  return save(out, model, model_config, report, names, overwrite) if out is not None else None


def save(out: str, model, model_config, report: Report, labels: list[str] | None,
         overwrite: bool, **metadata) -> str:
  """Atomic checkpoint save with vidjax.json (source, layout, converter, labels, report counts,
  ``metadata``) and report.json beside it; notes the path in the report."""
  from vidjax.models import checkpoint
  metadata = {
      "source": {k: report.source[k] for k in ("path", "sha256", "file_format", "container")},
      "layout": report.layout, "converter": f"python -m convert {report.command}",
      "labels": labels, "report": report.counts(), **metadata,
  }
  path = checkpoint.save(out, model, model_config, metadata, overwrite=overwrite,
                         extra_files={"report.json": report.to_dict()})
  report.notes.append(f"wrote {path}")
  return path


def read_source(path: str) -> tuple[dict[str, np.ndarray], io.Source]:
  return io.read_state_dict(path)


# ---------------------------------------------------------------------- released checkpoints
def convert_released(arch: str, sd: Mapping[str, np.ndarray], source: io.Source,
                     layout_name: str, report: Report, head_key: str, model_config: Any, *,
                     out: str | None, labels: str | None, overwrite: bool, seed: int = 0,
                     describe=None):
  """A complete official state dict -> Flax model, class count read from ``head_key``."""
  import ml_collections
  model_config = ml_collections.ConfigDict(model_config.to_dict())
  if head_key not in sd:
    raise ConversionError(f"{layout_name}: no classification head {head_key}; cannot read the "
                          "class count (is this a backbone-only / CLIP file?)")
  k = int(sd[head_key].shape[0])
  if model_config.get("num_classes") != k:
    report.notes.append(f"model.num_classes={model_config.get('num_classes')} -> {k} "
                        f"(read from {head_key} {shape_str(sd[head_key].shape)})")
    model_config.num_classes = k
  _, cfg = architecture(model_config)
  if describe is not None:
    report.target = describe(cfg)
  layout = layout_module(arch)
  expected = {key: tuple(s) for key, s in layout.official_shapes(cfg).items()}
  sd = dict(sd)
  for key in expected:
    if key.endswith("num_batches_tracked") and key not in sd:
      sd[key] = np.zeros((), np.int64)    # a counter, not a weight; absent from some re-saves
      report.notes.append(f"{key} absent: set to 0")
  strict_compare({key: v.shape for key, v in sd.items()}, expected,
                 f"{layout_name} -> {arch} config", hint=_family_hint(sd, expected))
  report.copied = [key for key in expected if not key.endswith("num_batches_tracked")]
  buffers = {key: int(np.asarray(sd[key])) for key in expected
             if key.endswith("num_batches_tracked")}
  report.dropped += [f"{key} (BatchNorm counter; kept in vidjax.json for export)"
                     for key in buffers]
  from vidjax.models import checkpoint
  del seed   # a complete checkpoint: nothing is initialised
  model = checkpoint.from_flat(model_config, layout.to_flax(sd, cfg))
  if out is not None:
    save(out, model, model_config, report, read_labels(labels, cfg.num_classes), overwrite,
         torch_buffers=buffers)
  return model, report


def _family_hint(given: Mapping[str, Any], expected: Mapping[str, Any]) -> str:
  extra = key_patterns(set(given) - set(expected))
  missing = key_patterns(set(expected) - set(given))
  if not (extra or missing):
    return ("hint: the key sets agree, only shapes differ: check model.variant / image_size "
            "(B/16 vs L/14, 224 vs 336) against the checkpoint")
  lines = ["hint: does --config match the checkpoint's family? In short:"]
  lines += [f"  checkpoint only: {p}" for p in extra[:12]]
  lines += [f"  config only:     {p}" for p in missing[:12]]
  return "\n".join(lines)


def export(ckpt_dir: str, out_path: str, *, overwrite: bool = False) -> dict[str, Any]:
  """A vidjax checkpoint -> the official PyTorch state-dict layout (.pth via torch, or
  .safetensors without torch). UniFormerV2 files are flat ``backbone.*`` dicts (as the zoo
  ``.pyth``); Video-FocalNet ``.pth`` files are ``{"model": state_dict}`` as the official code
  saves them. Returns a small summary."""
  from vidjax.models import checkpoint
  if os.path.exists(out_path) and not overwrite:
    raise FileExistsError(f"--out {out_path} already exists (pass --overwrite)")
  model, info = checkpoint.load(ckpt_dir)
  model_config = info["model"]
  _, cfg = architecture(model_config)
  layout = layout_module(model_config["name"])
  sd = layout.from_flax(checkpoint.flat_weights(model), cfg)
  for key, value in (info.get("torch_buffers") or {}).items():
    if key in sd:
      sd[key] = np.asarray(value, dtype=np.int64)
  tmp = out_path + ".tmp"
  if out_path.endswith(io.SAFETENSORS_SUFFIX):
    io.write_safetensors(sd, tmp, metadata={"format": "pt", "vidjax_model": model_config["name"],
                                            "source": os.path.abspath(ckpt_dir)})
  elif out_path.endswith(io.PICKLE_SUFFIXES):
    import collections

    import torch
    tensors = collections.OrderedDict((k, torch.from_numpy(np.array(v, order="C")))
                                      for k, v in sd.items())
    obj = {"model": tensors} if model_config["name"] == "video_focalnet" else tensors
    with open(tmp, "wb") as f:
      torch.save(obj, f)
  else:
    raise ValueError(f"--out {out_path}: expected .safetensors or one of {io.PICKLE_SUFFIXES}")
  os.replace(tmp, out_path)
  return {"out": os.path.abspath(out_path), "keys": len(sd), "model": model_config["name"],
          "num_classes": cfg.num_classes, "labels": info.get("labels")}
