"""The pipeline under bad input: flags outside absl, no substitution in evaluation, truncated
files, replaced paths reaching the consumer, annotation/CLI errors, blank clips (issue 10)."""

import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vidjax.data import config, decode, pipeline, sources, synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cfg(**kw):
  c = config.uniformerv2_data(num_classes=4, crop_size=16, batch_size=4, workers=0, prefetch=2,
                              num_frames=4)
  c.eval.short_side, c.eval.num_clips, c.eval.num_crops = 16, 1, 1
  c.update(kw)
  return c


def _take(ds, n):
  it = iter(ds)
  out = [next(it) for _ in range(n)]
  pipeline.close(it)
  return out


def _mixed_source(tiny_videos, bad_videos, names):
  """5 good synthetic records (labels 0..3) followed by `names` from `bad_videos` (label 2)."""
  d, lst = tiny_videos
  recs = sources.parse_list_file(lst, d).records[:5]
  recs += [sources.VideoRecord(bad_videos[n], 2, n) for n in names]
  return sources.VideoFileSource(recs)


# 1 ---------------------------------------------------------------------------------------------

_SCRIPT = """
import sys
from vidjax.data import config, pipeline, sources, synthetic

d = sys.argv[1]
lst = synthetic.write_dataset(d, 1, num_classes=2, num_frames=10, height=32, width=32, gop=4)
src = sources.VideoFileSource(sources.parse_list_file(lst, d).records)
c = config.uniformerv2_data(num_classes=2, crop_size=16, batch_size=2, num_frames=2, workers=1)

def first(cfg):
  it = iter(pipeline.train_dataset(cfg, src, process_index=0, process_count=1))
  b = next(it)
  pipeline.close(it)
  return b["clip"].shape

print("plain script:", first(c))  # nothing but vidjax.data imported, flags never parsed
from absl import app, flags
assert not flags.FLAGS.is_parsed()   # the application's flags are left alone
FOO = flags.DEFINE_integer("foo", 1, "an application flag")
try:
  FOO.value
  raise SystemExit("app flag readable before parsing")
except flags.UnparsedFlagAccessError:
  pass

def main(argv):  # an absl app parses its flags (grain's included) before main
  assert FOO.value == 3 and flags.FLAGS.grain_py_debug_mode is False
  print("absl app:", first(c))

app.run(main, argv=["prog", "--foo=3", "--grain_py_debug_mode=false"])
"""


def test_multiprocess_pipeline_from_a_plain_script_and_an_absl_app(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  env.pop("XLA_FLAGS", None)
  r = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path)], capture_output=True,
                     text=True, env=env, timeout=300, cwd=str(tmp_path))
  assert r.returncode == 0, r.stderr[-3000:]
  assert "plain script: (2, 2, 16, 16, 3)" in r.stdout and "absl app: (2, 2, 16, 16, 3)" in r.stdout


def test_grain_flags_readable_without_touching_other_flags():
  from absl import flags
  fv = flags.FlagValues()
  g = flags.DEFINE_bool("grain_demo", False, "", flag_values=fv, module_name="grain._src.demo")
  a = flags.DEFINE_integer("app_demo", 1, "", flag_values=fv, module_name="my_app")
  pipeline._grain_flags_usable(fv)
  assert g.value is False and not fv.is_parsed()
  with pytest.raises(flags.UnparsedFlagAccessError):
    a.value
  fv(["prog", "--grain_demo", "--app_demo=5"])  # a later parse still applies both
  assert g.value is True and a.value == 5


# 2 ---------------------------------------------------------------------------------------------

def test_eval_marks_undecodable_videos_failed_never_substitutes(tiny_videos, bad_videos):
  names = ["text.mp4", "empty.mp4", "missing.mp4", "trunc.mp4", "audio.mp4"]
  src = _mixed_source(tiny_videos, bad_videos, names)  # 10 records
  batches = _take(pipeline.eval_dataset(_cfg(eval_batch_size=4), src), 3)  # 12 slots
  cat = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
  assert cat["clip"].shape == (12, 1, 4, 16, 16, 3)
  np.testing.assert_array_equal(cat["valid"], [True] * 5 + [False] * 7)
  np.testing.assert_array_equal(cat["failed"], [False] * 5 + [True] * 5 + [False] * 2)
  np.testing.assert_array_equal(cat["index"][:10], np.arange(10))  # every video once, in order
  np.testing.assert_array_equal(cat["label"][:10], [r.label for r in src.records])
  assert not cat["clip"][5:].any() and cat["clip"][:5].any()
  failed = [src.describe(i) for i in cat["index"][cat["failed"]]]
  assert [os.path.basename(p) for p in failed] == names


# 3 ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,declared", [("trunc.mp4", 60), ("trunc.webm", 30)])
def test_truncated_file_with_readable_index_is_corrupt(bad_videos, name, declared):
  with decode.open_container(bad_videos[name]) as c:
    n = decode.packet_index(c).num_frames
    assert decode.declared_frames(c) == declared and n < declared / 2
    with pytest.raises(decode.DecodeError, match=f"truncated: {n} of {declared} declared frames"):
      decode.check_complete(c, n, 0.25)
    decode.check_complete(c, n, 1.0)  # threshold 1: never truncated
  good = bad_videos[name.replace("trunc", "good")]
  with decode.open_container(good) as c:
    assert decode.declared_frames(c) == decode.packet_index(c).num_frames == declared
  loader = pipeline.ClipLoader(sources.VideoFileSource([sources.VideoRecord(bad_videos[name], 0)]),
                               _cfg(), train=False)
  el = loader(0)
  assert el["failed"] and not el["valid"]


def test_truncated_files_replaced_in_training_listed_by_prepare_data(tiny_videos, bad_videos, tmp_path):
  import prepare_data
  src = _mixed_source(tiny_videos, bad_videos, ["trunc.mp4", "trunc.webm"])
  b = _take(pipeline.train_dataset(_cfg(batch_size=7), src), 1)[0]
  assert set(b["index"].tolist()) <= set(range(5))
  assert {5, 6} <= set(b["replaced"].ravel().tolist())
  lst = tmp_path / "list.txt"
  lst.write_text("".join(f"{n} 0\n" for n in ["good.mp4", "good.webm", "trunc.mp4", "trunc.webm"]))
  for mode in ("frames", "video"):
    out = tmp_path / mode
    prepare_data.prepare(prepare_data.parser().parse_args(
        ["--annotations", str(lst), "--video_dir", os.path.dirname(bad_videos["good.mp4"]),
         "--num_classes", "1", "--out", str(out), "--workers", "0", "--mode", mode,
         "--short_side", "0"]))
    fails = (out / "train-failures.txt").read_text().splitlines()
    assert len(fails) == 2 and all("truncated" in f for f in fails), fails
    assert len(sources.PreparedSource(str(out), "train")) == 2


# 4 and issue 11 (no module-level logged-path set) ------------------------------------------------

def test_replaced_indices_reach_the_batch_and_every_pipeline_logs(tiny_videos, bad_videos, caplog):
  src = _mixed_source(tiny_videos, bad_videos, ["text.mp4", "missing.mp4"])
  caplog.set_level(logging.WARNING)
  cfg = _cfg(batch_size=7, max_replacements=3)
  b = _take(pipeline.train_dataset(cfg, src), 1)[0]
  assert b["replaced"].shape == (7, 3) and b["replaced"].dtype == np.int64
  for row, n in zip(b["replaced"], b["num_replaced"]):  # first num_replaced slots, then -1
    assert (row[:n] >= 5).all() and (row[n:] == -1).all()
  assert set(b["replaced"].ravel().tolist()) == {-1, 5, 6}
  assert b["num_replaced"].sum() == (b["replaced"] >= 0).sum() >= 2
  first = [r.getMessage() for r in caplog.records]
  caplog.clear()
  _take(pipeline.train_dataset(cfg, src), 1)  # a second pipeline in the same process logs too
  second = [r.getMessage() for r in caplog.records]
  for msgs in (first, second):
    assert sum("text.mp4" in m for m in msgs) == 1 and sum("missing.mp4" in m for m in msgs) == 1
  assert not hasattr(pipeline, "_LOGGED")


# 5 ---------------------------------------------------------------------------------------------

def test_ssv2_template_not_a_string_is_a_problem(tmp_path):
  (tmp_path / "1.webm").write_bytes(b"")
  (tmp_path / "2.webm").write_bytes(b"")
  labels = tmp_path / "labels.json"
  labels.write_text(json.dumps({"Holding something": "0"}))
  ann = tmp_path / "train.json"
  ann.write_text(json.dumps([{"id": "1", "template": "Holding [something]"},
                             {"id": "2", "template": 7}]))
  a = sources.parse_ssv2_json(str(ann), str(labels), str(tmp_path))
  assert [r.id for r in a.records] == ["1"]
  assert [str(p) for p in a.problems] == [f"{ann}:entry 1: template must be a string, got 7"]


def test_labels_json_with_id_gaps_is_refused(tmp_path):
  p = tmp_path / "labels.json"
  p.write_text(json.dumps({"a": 0, "b": 1, "c": 5, "d": 9}))
  with pytest.raises(ValueError, match=r"labels.json: class ids must be 0\.\.3.*missing \[2, 3\]"):
    sources.ClassIndex.from_file(str(p))
  p.write_text(json.dumps({"a": "1", "b": "0"}))  # a permutation keeps its ids
  assert sources.ClassIndex.from_file(str(p)).names == ["b", "a"]


def test_kinetics_empty_label_is_a_problem_without_class_file(tmp_path):
  for n in ("AAAAAAAAAAA", "BBBBBBBBBBB"):
    (tmp_path / f"{n}.mp4").write_bytes(b"")
  csv = tmp_path / "train.csv"
  csv.write_text("label,youtube_id,time_start,time_end\nabseiling,AAAAAAAAAAA,0,10\n"
                 ",BBBBBBBBBBB,0,10\n")
  ann = sources.parse_kinetics_csv(str(csv), str(tmp_path))
  assert ann.classes.names == ["abseiling"] and len(ann.records) == 1
  assert [str(p) for p in ann.problems] == [f"{csv}:3: empty label"]


def test_audio_only_file_says_no_video_stream(bad_videos, tmp_path):
  import prepare_data
  with pytest.raises(decode.DecodeError, match="no video stream"):
    decode.num_video_frames(bad_videos["audio.mp4"])
  rec = sources.VideoRecord(bad_videos["audio.mp4"], 0, "audio")
  feats = sources.prepared_features("frames", ["x"])
  for mode in ("frames", "video"):
    _, data, err = prepare_data.encode_record(rec, mode, 25, 0, 90, feats, 0.25)
    assert data is None and "no video stream" in err


def test_list_file_paths_with_spaces_and_unique_ids(tmp_path):
  for f in ("my clip.mp4", "a.mp4", "a.webm", "sub/a.mp4"):
    os.makedirs(os.path.dirname(str(tmp_path / f)), exist_ok=True)
    (tmp_path / f).write_bytes(b"")
  lst = tmp_path / "list.txt"
  lst.write_text('"my clip.mp4" 12 1\nmy clip.mp4\t0\na.mp4 0\na.webm 1\nsub/a.mp4 0\n'
                 "my clip.mp4 1\n")
  ann = sources.parse_list_file(str(lst), str(tmp_path), num_classes=2)
  assert [(r.id, r.label, r.num_frames) for r in ann.records] == [
      ("my clip.mp4", 1, 12), ("my clip.mp4", 0, None), ("a.mp4", 0, None), ("a.webm", 1, None),
      (os.path.join("sub", "a.mp4"), 0, None)]
  assert len(ann.problems) == 1 and ann.problems[0].line == 6
  assert "quote a path with spaces or separate the fields by tabs" in ann.problems[0].message


def test_prepare_data_lists_missing_files_in_failures(tiny_videos, tmp_path):
  import prepare_data
  d, lst = tiny_videos
  lines = open(lst).read().splitlines()
  bad = tmp_path / "list.txt"
  bad.write_text("\n".join(lines[:3] + ["nowhere/missing.mp4 0"]) + "\n")
  out = tmp_path / "out"
  prepare_data.prepare(prepare_data.parser().parse_args(
      ["--annotations", str(bad), "--video_dir", d, "--num_classes", "4", "--out", str(out),
       "--workers", "0", "--mode", "video"]))
  fails = (out / "train-failures.txt").read_text().splitlines()
  assert len(fails) == 1 and fails[0].startswith(f"{bad}:4: missing video") and "missing.mp4" in fails[0]
  assert len(sources.PreparedSource(str(out), "train")) == 3


def test_wrong_video_dir_is_refused_and_empty_sources_say_so(tiny_videos, tmp_path):
  import prepare_data
  d, lst = tiny_videos
  wrong = tmp_path / "elsewhere"
  wrong.mkdir()
  out = tmp_path / "out"
  args = ["--annotations", lst, "--video_dir", str(wrong), "--num_classes", "4", "--out", str(out),
          "--workers", "0", "--mode", "video"]
  with pytest.raises(SystemExit, match=f"0 of 12 annotated videos usable under {wrong}") as e:
    prepare_data.main(args)
  assert "\n" not in str(e.value) and not (out / "dataset_info.json").exists()
  cfg = _cfg(source="files", format="list", train_annotations=lst, video_dir=str(wrong))
  with pytest.raises(ValueError, match=f"0 of 12 annotated videos usable under {wrong}"):
    pipeline.make_source(cfg, "train")
  empty = sources.VideoFileSource([])
  with pytest.raises(ValueError, match="no records"):
    pipeline.train_dataset(_cfg(), empty)
  with pytest.raises(ValueError, match="no records"):
    pipeline.eval_dataset(_cfg(), empty)
  # Every video decodes as garbage: refused after encoding, and a rerun starts over.
  fake = tmp_path / "fake"
  for ln in open(lst).read().splitlines():
    p = fake / ln.split()[0]
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("not a video")
  with pytest.raises(SystemExit, match=f"0 of 12 annotated videos readable under {fake}"):
    prepare_data.main(["--annotations", lst, "--video_dir", str(fake), "--num_classes", "4",
                       "--out", str(out), "--workers", "0", "--mode", "video"])
  assert not (out / "dataset_info.json").exists()
  assert not [f for f in os.listdir(out) if f.endswith(".json")]


def test_missing_annotation_file_is_one_line(tmp_path):
  import prepare_data
  missing = str(tmp_path / "nope.txt")
  with pytest.raises(FileNotFoundError, match=f"annotations file not found: {missing}"):
    sources.parse_annotations("list", annotations=missing, video_dir=str(tmp_path))
  with pytest.raises(FileNotFoundError, match="labels file not found"):
    sources.ClassIndex.from_file(str(tmp_path / "labels.txt"))
  with pytest.raises(SystemExit, match=f"annotations file not found: {missing}") as e:
    prepare_data.main(["--annotations", missing, "--video_dir", str(tmp_path), "--out",
                       str(tmp_path / "o")])
  assert "\n" not in str(e.value)


# 6 ---------------------------------------------------------------------------------------------

def test_blank_clips_are_flagged(tmp_path, file_source, monkeypatch):
  grey = np.full((12, 48, 64, 3), 77, np.uint8)
  path = synthetic.write_mp4(str(tmp_path / "grey.mp4"), grey, gop=4)
  src = sources.VideoFileSource([sources.VideoRecord(path, 0)] + file_source.records[:3])
  cfg = _cfg(batch_size=4)
  cfg.train.rand_augment = ""
  b = _take(pipeline.train_dataset(cfg, src), 1)[0]
  np.testing.assert_array_equal(b["blank"], b["index"] == 0)
  # RandAugment translations moving a small crop entirely off the frame: all fill colour.
  from vidjax.data import transforms
  monkeypatch.setattr(transforms, "sample_rand_augment",
                      lambda rng, **kw: [("TranslateXRel", 0.45)] * 3)
  cfg = _cfg(batch_size=4)
  cfg.train.scale = (0.05, 0.05)
  cfg.train.num_samples = 2
  b = _take(pipeline.train_dataset(cfg, file_source), 1)[0]
  assert b["blank"].shape == (4,) and b["blank"].all()
  assert (b["clip"] == b["clip"][:, :, :1, :1]).all()
