"""Annotation formats: records, class indices and problems reported with file:line."""

import json
import os

import pytest

from vidjax.data import sources


def _touch(path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  open(path, "wb").close()


def test_kinetics_csv(tmp_path):
  vd = tmp_path / "videos"
  _touch(str(vd / "abseiling" / "AAAAAAAAAAA_000010_000020.mp4"))
  _touch(str(vd / "BBBBBBBBBBB.mp4"))
  csv = tmp_path / "train.csv"
  csv.write_text("label,youtube_id,time_start,time_end,split\n"
                 "abseiling,AAAAAAAAAAA,10,20,train\n"
                 "air drumming,BBBBBBBBBBB,0,10,train\n"
                 "abseiling,CCCCCCCCCCC,0,10,train\n"       # line 4: missing file
                 "abseiling,DDDDDDDDDDD,x,10,train\n"        # line 5: malformed time
                 "juggling,AAAAAAAAAAA,10,20,train\n")        # line 6: unknown with class file
  labels = tmp_path / "classes.txt"
  labels.write_text("abseiling\nair drumming\n")
  ann = sources.parse_kinetics_csv(str(csv), str(vd), sources.ClassIndex.from_file(str(labels)))
  assert [(os.path.basename(r.path), r.label) for r in ann.records] == [
      ("AAAAAAAAAAA_000010_000020.mp4", 0), ("BBBBBBBBBBB.mp4", 1)]
  msgs = [str(p) for p in ann.problems]
  assert msgs[0].startswith(f"{csv}:5: bad time_start")
  assert msgs[1].startswith(f"{csv}:4: missing video CCCCCCCCCCC_000000_000010")
  assert msgs[2] == f"{csv}:6: unknown label 'juggling'"
  with pytest.raises(sources.AnnotationError, match=":6: unknown label"):
    sources.parse_kinetics_csv(str(csv), str(vd), sources.ClassIndex.from_file(str(labels)), strict=True)


def test_ssv2_json(tmp_path):
  vd = tmp_path / "v"
  _touch(str(vd / "1.webm"))
  _touch(str(vd / "2.webm"))
  labels = tmp_path / "labels.json"
  labels.write_text(json.dumps({"Pushing something from left to right": "1",
                                "Holding something": "0"}))
  ann_path = tmp_path / "train.json"
  ann_path.write_text(json.dumps([
      {"id": "1", "template": "Pushing [something] from left to right", "label": "x"},
      {"id": "2", "template": "Holding [something]"},
      {"id": "3", "template": "Holding [something]"},           # entry 2: missing file
      {"id": "2", "template": "Dropping [something]"},          # entry 3: unknown label
      {"template": "no id"}]))                                   # entry 4: malformed
  ann = sources.parse_ssv2_json(str(ann_path), str(labels), str(vd))
  assert [(r.id, r.label) for r in ann.records] == [("1", 1), ("2", 0)]
  assert ann.classes.names == ["Holding something", "Pushing something from left to right"]
  assert [(p.line, p.message.split()[0]) for p in ann.problems] == [(2, "missing"), (3, "unknown"), (4, "expected")]
  assert str(ann.problems[1]).startswith(f"{ann_path}:entry 3: unknown label")


def test_mmaction_list_both_layouts(tmp_path):
  for f in ("a.mp4", "b.mp4", "frames_dir/x"):
    _touch(str(tmp_path / f))
  lst = tmp_path / "list.txt"
  lst.write_text("a.mp4 2\nb.mp4 40 1\n\nfoo.mp4 1\na.mp4 9\na.mp4 two\na.mp4 1 2 3\n")
  ann = sources.parse_list_file(str(lst), str(tmp_path), num_classes=3)
  assert [(os.path.basename(r.path), r.label, r.num_frames) for r in ann.records] == [
      ("a.mp4", 2, None), ("b.mp4", 1, 40)]
  assert [(p.line, p.message.split()[0]) for p in ann.problems] == [
      (4, "missing"), (5, "unknown"), (6, "non-integer"), (7, "expected")]


def test_class_folders(tmp_path):
  for f in ("b_cls/1.mp4", "a_cls/2.webm", "a_cls/notes.txt", "c_empty/.keep"):
    _touch(str(tmp_path / f))
  ann = sources.parse_class_folders(str(tmp_path))
  assert ann.classes.names == ["a_cls", "b_cls", "c_empty"]
  assert [(os.path.basename(r.path), r.label) for r in ann.records] == [("2.webm", 0), ("1.mp4", 1)]


def test_prepared_source_is_a_tfds_dataset(tiny_prepared, file_source):
  import tensorflow_datasets as tfds
  src = sources.PreparedSource(tiny_prepared, "train")
  tsrc = tfds.builder_from_directory(tiny_prepared).as_data_source()["train"]
  assert len(src) == len(tsrc) == len(file_source) == 12
  ex, tex = src[3], tsrc[3]
  assert ex["frames"] == list(tex["frames"]) and ex["label"] == tex["label"]
  assert ex["num_frames"] == len(ex["frames"]) and ex["id"] == tex["id"].decode()
  assert sorted(src[i]["id"] for i in range(12)) == sorted(r.id for r in file_source.records)
