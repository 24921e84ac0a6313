"""What every entry point shares: ``--config FILE[:arg]`` with ``--config.a.b=value`` overrides
(``ml_collections.config_flags``) and one-line errors with exit code 2.

absl entry points (``experiments/train.py``, ``evaluate.py``, ``summary.py``, ``infer.py``) define
their config flag with :func:`define_config` and start with :func:`run` instead of ``app.run``;
argparse entry points (``python -m convert``, ``experiments/prepare_data.py``,
``benchmark_data.py``) take ``--config`` as a string, pass the remaining ``--config.*`` arguments
(:func:`split_overrides`) to :func:`load_config`, and print a :class:`ConfigError` as one line.

A missing config file, a field the config does not have (``--config.model.num_clases=37``) or a
value of the wrong type is one line naming the flag, the field, the nearest valid name (difflib)
and the file, e.g.::

    error: --config.model.num_clases=37: configs/uniformerv2/k400_b16_8x224.py has no field
    model.num_clases (nearest: model.num_classes)
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import ml_collections
from absl import app, flags
from ml_collections import config_flags
from ml_collections.config_flags.config_flags import is_config_flag

EXIT_USAGE = 2


class ConfigError(ValueError):
  """A bad ``--config`` / ``--config.*`` argument; the message is one line."""


def define_config(name: str = "config", help: str = "Experiment config file[:arg].", *,
                  lock_config: bool = True) -> flags.FlagHolder:
  """``config_flags.DEFINE_config_file`` on the global absl flags (parsed by :func:`run`)."""
  return config_flags.DEFINE_config_file(name, None, help, lock_config=lock_config)


def run(main: Callable[[list[str]], Any], *,
        errors: tuple[type[BaseException], ...] = ()) -> NoReturn:
  """``app.run(main)`` whose flag errors are one ``error:`` line and exit code 2.

  ``errors``: exception types that ``main`` may raise for bad input (e.g. ``ValueError`` from a
  model config check); they are printed the same way instead of as a traceback.
  """
  def guarded(argv):
    try:
      return main(argv)
    except errors as e:
      files = [config_flags.get_config_filename(flags.FLAGS[n]) for n in flags.FLAGS
               if is_config_flag(flags.FLAGS[n]) and flags.FLAGS[n].present]
      fail(_one_line(e) + "".join(f" (config {f})" for f in files))

  app.run(guarded, flags_parser=parse_flags)


def parse_flags(argv: Sequence[str], flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
  """``flag_values(argv)``; every failure (config or not) is one ``error:`` line, exit code 2."""
  try:
    return _parse(argv, flag_values)
  except ConfigError as e:
    fail(str(e))


def split_overrides(argv: Sequence[str], name: str = "config") -> tuple[list[str], list[str]]:
  """(the other arguments, the ``--NAME.a.b=value`` / ``--NAME.a.b value`` overrides)."""
  rest, overrides, args = [], [], list(argv)
  pattern = re.compile(rf"^--?(no)?{re.escape(name)}\.")
  i = 0
  while i < len(args):
    a = args[i]
    m = pattern.match(a)
    if m:
      overrides.append(a)
      if (not m.group(1) and "=" not in a and i + 1 < len(args)   # --noNAME.x takes no value
          and not args[i + 1].startswith("-")):
        overrides.append(args[i + 1])
        i += 1
    else:
      rest.append(a)
    i += 1
  return rest, overrides


def load_config(spec: str, overrides: Sequence[str] = (), *, name: str = "config",
                lock_config: bool = True) -> ml_collections.ConfigDict:
  """``get_config(arg)`` of ``spec`` = ``FILE[:arg]`` with ``--NAME.*`` ``overrides`` applied.

  The same ``config_flags`` parsing as the absl entry points. Raises :class:`ConfigError`.
  """
  argv = ["prog", f"--{name}={spec}", *overrides]
  fv = flags.FlagValues()
  holder = config_flags.DEFINE_config_file(name, None, "config", flag_values=fv,
                                           lock_config=lock_config, sys_argv=argv)
  rest = _parse(argv, fv)
  if len(rest) > 1:
    raise ConfigError(f"unexpected arguments {rest[1:]}")
  return holder.value


def fail(message: str) -> NoReturn:
  """Prints ``error: MESSAGE`` to stderr and exits with code 2 (``str()`` of the exit: MESSAGE)."""
  print(f"error: {message}", file=sys.stderr)
  e = SystemExit(message)
  e.code = EXIT_USAGE
  raise e


# ------------------------------------------------------------------------------ internals

def _one_line(e: BaseException) -> str:
  return " ".join(str(e).split()) or type(e).__name__


def _parse(argv: Sequence[str], fv: flags.FlagValues) -> list[str]:
  names = [n for n in fv if is_config_flag(fv[n])]
  try:
    rest = fv(list(argv))
  except Exception as e:  # config_flags raises KeyError/AttributeError/IOError, absl flags.Error
    raise ConfigError(_explain(argv, names, e)) from None
  for n in names:
    if fv[n].present or fv[n].value is not None:
      try:
        fv[n].value.get("__probe__")   # a config that failed to load raises on any access
      except Exception as e:
        raise ConfigError(_explain(argv, names, e)) from None
  return rest


def _flag_value(argv: Sequence[str], name: str) -> str | None:
  """The value of ``--name`` / ``--name=value`` in argv (the last one), or None."""
  value = None
  for i, a in enumerate(argv):
    if re.match(rf"^--?{re.escape(name)}=", a):
      value = a.split("=", 1)[1]
    elif re.match(rf"^--?{re.escape(name)}$", a) and i + 1 < len(argv):
      value = argv[i + 1]
  return value


def _explain(argv: Sequence[str], names: Sequence[str], error: BaseException) -> str:
  """One line saying which ``--config`` argument is wrong, the nearest valid name and the file."""
  for name in names:
    spec = _flag_value(argv, name)
    if spec is None:
      continue
    path, *arg = spec.split(":", 1)
    if not os.path.isfile(path):
      return f"--{name} {spec}: no such config file{_nearest_file(path)}"
    try:
      config = _get_config(path, arg)
    except Exception as e:
      return f"--{name} {spec}: get_config failed: {type(e).__name__}: {_one_line(e)}"
    for a in argv:
      m = re.match(rf"^--?(?:no)?{re.escape(name)}\.([^=]+)(?:=(.*))?$", a)
      if m:
        missing = _missing_field(config, m.group(1))
        if missing:
          return f"{a}: {path} has no field {missing}"
    if isinstance(error, flags.Error) and f"--{name}." in str(error):
      return f"{_one_line(error)} (config {path})"
  return _one_line(error)


def _get_config(path: str, arg: list[str]) -> Any:
  spec = importlib.util.spec_from_file_location("vidjax_cli_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise AttributeError(f"{path} defines no get_config()")
  return module.get_config(*arg)


def _missing_field(config: Any, dotted: str) -> str | None:
  """``'model.num_clases (nearest: model.num_classes)'`` when ``dotted`` is not a field."""
  node, done = config, []
  for key in dotted.split("."):
    keys = list(node.keys()) if hasattr(node, "keys") else []
    if key not in keys:
      near = difflib.get_close_matches(key, [str(k) for k in keys], n=1)
      where = ".".join(done + [key])
      hint = f"nearest: {'.'.join(done + near)}" if near else (
          f"fields here: {', '.join(map(str, keys))}" if keys else
          f"{'.'.join(done)} is a value of type {type(node).__name__}, not a section")
      return f"{where} ({hint})"
    node, done = node[key], done + [key]
  return None


def _nearest_file(path: str) -> str:
  folder = os.path.dirname(path) or "."
  if not os.path.isdir(folder):
    return f" (no folder {folder})"
  near = difflib.get_close_matches(os.path.basename(path), sorted(os.listdir(folder)), n=1)
  return f" (nearest: {os.path.join(os.path.dirname(path), near[0])})" if near else ""
