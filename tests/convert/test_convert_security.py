"""No payload in any pickle of any accepted file runs code: ``python -m convert`` refuses it.

Every payload below creates a sentinel file when Python's own ``pickle`` loads it (checked, so the
refusal tests cannot pass vacuously). Placed in each pickle record of a legacy ``torch.save``
file, as a raw pickle, in a zip ``data.pkl`` and in each pickle of a TorchScript archive, the
CLI (``convert.__main__.main`` in-process; one subprocess) must leave the sentinel absent, exit
with 2, print one ``error:`` line naming the file and the refused global, and write nothing.
"""

import os
import pickle
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from convert import io  # noqa: E402
from convert.__main__ import main  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "uniformerv2", "tiny_test.py")
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit", "ignore::FutureWarning")


class _Call:
  """Pickles as ``func(*args)``: the shape of every pickle payload."""

  def __init__(self, func, *args):
    self.func, self.args = func, args

  def __reduce__(self):
    return self.func, self.args

  def __call__(self, *args):   # pickle requires the reduce callable to be callable
    raise AssertionError("never called")


# name -> (payload builder, the global the reader must refuse first)
PAYLOADS = {
    "eval-protocol2": (lambda code, cmd: pickle.dumps(_Call(eval, code), protocol=2),
                       "builtins.eval"),          # written as GLOBAL '__builtin__ eval'
    "exec-protocol5": (lambda code, cmd: pickle.dumps(_Call(exec, code), protocol=5),
                       "builtins.exec"),          # STACK_GLOBAL 'builtins' 'exec'
    "os.system": (lambda code, cmd: pickle.dumps(_Call(os.system, cmd), protocol=2),
                  "posix.system"),
    "subprocess.Popen": (lambda code, cmd: pickle.dumps(
        _Call(subprocess.Popen, cmd.split()), protocol=4), "subprocess.Popen"),
    "getattr-chain": (lambda code, cmd: pickle.dumps(   # getattr(__import__('os'), 'system')(cmd)
        _Call(_Call(getattr, _Call(__import__, "os"), "system"), cmd), protocol=2),
        "builtins.__import__"),
    "__builtin__-protocol0": (lambda code, cmd: b"c__builtin__\neval\n(V" + code.encode()
                              + b"\ntR.", "builtins.eval"),
}


def _payload(name, sentinel):
  code = f"open({str(sentinel)!r}, 'w').close()"
  return PAYLOADS[name][0](code, f"touch {sentinel}")


@pytest.mark.parametrize("name", PAYLOADS)
def test_every_payload_runs_under_plain_pickle(name, tmp_path):
  """The payloads are live: Python's pickle creates the sentinel (so the tests below can fail)."""
  sentinel = tmp_path / "ran"
  result = pickle.loads(_payload(name, sentinel))
  if isinstance(result, subprocess.Popen):
    result.wait()
  assert sentinel.exists()


def _cli(args, capsys):
  rc = main(args)
  return rc, capsys.readouterr().err.strip()


def _assert_refused(src, tmp_path, capsys, refused, command="uniformerv2"):
  out = tmp_path / "out"
  rc, err = _cli([command, "--src", str(src), "--config", CONFIG, "--out", str(out)], capsys)
  assert rc == 2 and not out.exists(), err
  assert "\n" not in err, err
  assert err.startswith(f"error: {src}: refused global {refused}, which the "), err
  assert "nothing from the file was executed" in err


# ------------------------------------------------------------------------------- legacy format
LEGACY_RECORDS = ("magic-number", "protocol", "sys-info", "main", "storage-keys")


def _legacy_records() -> tuple[list[bytes], bytes]:
  """A legacy torch.save file cut into its five pickles and the raw storage bytes."""
  import io as io_lib
  buf = io_lib.BytesIO()
  torch.save({"backbone.x": torch.arange(3.)}, buf, _use_new_zipfile_serialization=False)
  raw = buf.getvalue()

  class Cut(pickle.Unpickler):   # our own trusted file: only to find the record boundaries
    def persistent_load(self, pid):
      return None

    def find_class(self, module, name):
      return lambda *args: None

  f, records = io_lib.BytesIO(raw), []
  for _ in LEGACY_RECORDS:
    start = f.tell()
    Cut(f).load()
    records.append(raw[start:f.tell()])
  return records, raw[f.tell():]


@pytest.mark.parametrize("name", PAYLOADS)
@pytest.mark.parametrize("record", range(len(LEGACY_RECORDS)), ids=LEGACY_RECORDS)
def test_payload_in_any_legacy_record_is_refused(record, name, tmp_path, capsys):
  records, storages = _legacy_records()
  sentinel = tmp_path / "ran"
  records[record] = _payload(name, sentinel)
  src = tmp_path / "evil.pyth"
  src.write_bytes(b"".join(records) + storages)
  _assert_refused(src, tmp_path, capsys, PAYLOADS[name][1])
  assert not sentinel.exists()


def test_issue_reproduction_is_refused_by_the_command_line(tmp_path):
  """The reported file (eval in the magic-number pickle), through `python -m convert`."""
  records, storages = _legacy_records()
  sentinel = tmp_path / "PWNED"
  src = tmp_path / "evil.pyth"
  src.write_bytes(_payload("eval-protocol2", sentinel) + b"".join(records[1:]) + storages)
  out = tmp_path / "out"
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
             JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-m", "convert", "uniformerv2", "--src", str(src),
                      "--config", CONFIG, "--out", str(out)], capture_output=True, text=True,
                     cwd=ROOT, env=env, timeout=300)
  assert r.returncode == 2 and not sentinel.exists() and not out.exists()
  assert r.stderr.strip().splitlines() == [
      f"error: {src}: refused global builtins.eval, which the first pickle (the legacy "
      "magic-number record) calls; only tensors, plain containers and inert placeholders for "
      "classes the file does not call are loaded (nothing from the file was executed)"]


# ------------------------------------------------------------------------------- raw pickles
@pytest.mark.parametrize("name", PAYLOADS)
def test_raw_pickle_payload_is_refused(name, tmp_path, capsys):
  sentinel = tmp_path / "ran"
  src = tmp_path / "evil.pth"
  src.write_bytes(_payload(name, sentinel))
  _assert_refused(src, tmp_path, capsys, PAYLOADS[name][1])
  assert not sentinel.exists()


def test_harmless_raw_pickle_is_named_not_a_checkpoint(tmp_path, capsys):
  src = tmp_path / "weights.pth"
  src.write_bytes(pickle.dumps({"backbone.x": np.zeros(2, np.float32)}, protocol=2))
  rc, err = _cli(["uniformerv2", "--src", str(src), "--config", CONFIG, "--out",
                  str(tmp_path / "out")], capsys)
  assert rc == 2 and "\n" not in err
  assert err.startswith(f"error: {src}: not a PyTorch checkpoint") and "raw pickle" in err


# ------------------------------------------------------------------------------- zip data.pkl
def _replace_member(src, dst, suffix, data):
  hit = False
  with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
    for info in zin.infolist():
      body = zin.read(info)
      if info.filename.endswith(suffix):
        body, hit = data, True
      zout.writestr(info.filename, body)
  assert hit, suffix


@pytest.mark.parametrize("name", PAYLOADS)
def test_payload_as_zip_data_pkl_is_refused(name, tmp_path, capsys):
  good = tmp_path / "good.pth"
  torch.save({"backbone.x": torch.zeros(2)}, good)
  sentinel = tmp_path / "ran"
  src = tmp_path / "evil.pth"
  _replace_member(good, src, "/data.pkl", _payload(name, sentinel))
  _assert_refused(src, tmp_path, capsys, PAYLOADS[name][1])
  assert not sentinel.exists()


CALLS = {   # the same payloads as objects torch.save pickles inside data.pkl
    "os.system": lambda s: _Call(os.system, f"touch {s}"),
    "subprocess.Popen": lambda s: _Call(subprocess.Popen, ["touch", str(s)]),
    "getattr-chain": lambda s: _Call(_Call(getattr, _Call(__import__, "os"), "system"),
                                     f"touch {s}"),
}


@pytest.mark.parametrize("name", CALLS)
def test_payload_beside_the_weights_inside_a_config_is_refused(name, tmp_path, capsys):
  """torch.save writes the payload into data.pkl next to real tensors, inside the state of a
  class (argparse.Namespace) that alone would become an inert placeholder."""
  import argparse
  sentinel = tmp_path / "ran"
  cfg = argparse.Namespace(lr=0.1, hook=CALLS[name](sentinel))
  src = tmp_path / "ckpt.pyth"
  torch.save({"model_state": {"backbone.x": torch.zeros(2)}, "cfg": cfg}, src)
  _assert_refused(src, tmp_path, capsys, PAYLOADS[name][1])
  assert not sentinel.exists()


# ------------------------------------------------------------------------------- TorchScript
@pytest.fixture(scope="module")
def torchscript(tmp_path_factory):
  """A traced two-layer module saved with torch.jit.save, and its torch.jit.load state dict."""
  torch.manual_seed(0)
  m = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.LayerNorm(3))
  path = tmp_path_factory.mktemp("ts") / "ts.pt"
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    torch.jit.save(torch.jit.trace(m, torch.zeros(1, 2)), str(path))
    reference = {k: v.numpy() for k, v in torch.jit.load(str(path)).state_dict().items()}
  return path, reference


def test_torchscript_is_read_without_torch_jit_load(torchscript, monkeypatch):
  path, reference = torchscript
  monkeypatch.setattr(torch.jit, "load", None)   # would raise if called
  sd, src = io.read_state_dict(str(path))
  assert src.file_format == "torchscript" and list(sd) == list(reference)
  for k, v in reference.items():
    np.testing.assert_array_equal(sd[k], v, err_msg=k)


@pytest.mark.parametrize("name", PAYLOADS)
def test_payload_as_torchscript_data_pkl_is_refused(name, torchscript, tmp_path, capsys):
  sentinel = tmp_path / "ran"
  src = tmp_path / "evil.pt"
  _replace_member(torchscript[0], src, "/data.pkl", _payload(name, sentinel))
  _assert_refused(src, tmp_path, capsys, PAYLOADS[name][1], command="clip")
  assert not sentinel.exists()


@pytest.mark.parametrize("member", ["/constants.pkl", "/traced_inputs.pkl", ".py.debug_pkl"])
@pytest.mark.parametrize("name", ["eval-protocol2", "os.system", "subprocess.Popen"])
def test_torchscript_side_pickles_are_never_unpickled(member, name, torchscript, tmp_path):
  """Only data.pkl holds weights; the other pickles are not read, so their payloads never run."""
  path, reference = torchscript
  sentinel = tmp_path / "ran"
  src = tmp_path / "evil.pt"
  _replace_member(path, src, member, _payload(name, sentinel))
  sd, _ = io.read_state_dict(str(src))
  assert not sentinel.exists()
  assert sorted(sd) == sorted(reference)


class _SetStateModule(torch.nn.Module):
  """A module whose TorchScript __setstate__ creates a file through aten::from_file."""

  def __init__(self, path: str):
    super().__init__()
    self.w = torch.nn.Parameter(torch.ones(2))
    self.path = path

  def forward(self, x):
    return x * self.w

  @torch.jit.export
  def __getstate__(self):
    return (self.w, self.training, self.path)

  @torch.jit.export
  def __setstate__(self, state: tuple[torch.Tensor, bool, str]):
    self.w = state[0]
    self.training = state[1]
    self.path = state[2]
    self.w = self.w + 0.0 * torch.from_file(self.path, True, 2)


def test_torchscript_setstate_code_is_never_run(tmp_path, capsys):
  """torch.jit.load runs an archive's __setstate__ (here: creating a file); the converter
  refuses such an archive without running it."""
  sentinel = tmp_path / "from_file"
  src = tmp_path / "evil_ts.pt"
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    torch.jit.save(torch.jit.script(_SetStateModule(str(sentinel))), str(src))
  assert not sentinel.exists()
  out = tmp_path / "out"
  rc, err = _cli(["clip", "--src", str(src), "--config", CONFIG, "--out", str(out)], capsys)
  assert rc == 2 and not out.exists() and not sentinel.exists()
  assert "\n" not in err and err.startswith(f"error: {src}: TorchScript module __torch__.")
  assert "custom __getstate__ state" in err
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    torch.jit.load(str(src))   # the threat is real: torch.jit.load runs the archive's code
  assert sentinel.exists()


# ------------------------------------------------------------------------------- broken files
def _truncated(kind, tmp_path):
  if kind == "empty.pth":
    data = b""
  elif kind.startswith("zip"):
    torch.save({"backbone.x": torch.arange(64.)}, tmp_path / "z.pth")
    full = (tmp_path / "z.pth").read_bytes()
    data = full[:len(full) // 2]
  elif kind.startswith("legacy"):
    records, storages = _legacy_records()
    full = b"".join(records) + storages
    cut = len(b"".join(records[:3])) + 10 if kind == "legacy-main.pth" else len(full) - 4
    data = full[:cut]
  else:   # safetensors
    io.write_safetensors({"backbone.x": np.arange(64, dtype=np.float32)},
                         str(tmp_path / "s.safetensors"))
    full = (tmp_path / "s.safetensors").read_bytes()
    data = full[:len(full) - 16]
  path = tmp_path / ("cut_" + kind)
  path.write_bytes(data)
  return path


@pytest.mark.parametrize("kind", ["empty.pth", "zip.pth", "legacy-main.pth", "legacy-data.pth",
                                  "cut.safetensors"])
def test_truncated_files_give_one_line_naming_them(kind, tmp_path, capsys):
  src = _truncated(kind, tmp_path)
  out = tmp_path / "out"
  rc, err = _cli(["uniformerv2", "--src", str(src), "--config", CONFIG, "--out", str(out)],
                 capsys)
  assert rc == 2 and not out.exists(), err
  assert "\n" not in err and err.startswith(f"error: {src}: "), err
  assert "Traceback" not in err
