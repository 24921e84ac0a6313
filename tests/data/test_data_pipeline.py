"""grain pipeline: determinism, resume from iterator state (grain and orbax), per-process coverage,
global batches independent of the process count, corrupt files, repeated augmentation, grouped
eval views and global sharded batches."""

import json
import logging
import os

import jax
import numpy as np
import pytest

from vidjax.data import config, pipeline, sources


def _cfg(**kw):
  c = config.uniformerv2_data(num_classes=4, crop_size=32, batch_size=4, workers=0, prefetch=2,
                              num_frames=8)
  c.eval.short_side = 32
  c.update(kw)
  return c


def _take(ds, n):
  it = iter(ds)
  out = [next(it) for _ in range(n)]
  pipeline.close(it)
  return out


def _same(a, b):
  return all(np.array_equal(a[k], b[k]) for k in a)


def test_deterministic_given_seed(file_source):
  a = _take(pipeline.train_dataset(_cfg(), file_source), 2)
  b = _take(pipeline.train_dataset(_cfg(), file_source), 2)
  c = _take(pipeline.train_dataset(_cfg(seed=1), file_source), 2)
  assert all(_same(x, y) for x, y in zip(a, b))
  assert not np.array_equal(a[0]["clip"], c[0]["clip"])
  assert a[0]["clip"].shape == (4, 8, 32, 32, 3) and a[0]["clip"].dtype == np.uint8


def test_prepared_and_file_sources_agree_on_epoch(tiny_prepared, file_source):
  src = sources.PreparedSource(tiny_prepared, "train")
  for s in (src, file_source):
    b = _take(pipeline.train_dataset(_cfg(batch_size=12), s), 1)[0]
    assert sorted(b["index"].tolist()) == list(range(12))  # one epoch = every record once
    assert b["num_replaced"].sum() == 0
    assert b["clip"].shape == (12, 8, 32, 32, 3)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_from_iterator_state(tiny_prepared, workers, tmp_path):
  """grain get_state/set_state and orbax (grain.checkpoint.CheckpointSave/Restore) resume exactly."""
  import grain
  import orbax.checkpoint as ocp
  src = sources.PreparedSource(tiny_prepared, "train")
  cfg = _cfg(workers=workers, batch_size=2)
  it = iter(pipeline.train_dataset(cfg, src))
  first = [next(it) for _ in range(3)]
  state = it.get_state()
  with ocp.CheckpointManager(str(tmp_path / "ckpt"), item_names=("data",)) as mngr:
    mngr.save(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
    mngr.wait_until_finished()
  expected = [next(it) for _ in range(2)]
  pipeline.close(it)
  saved = list((tmp_path / "ckpt" / "3" / "data").glob("process_*.json"))
  assert len(saved) == 1 and json.loads(saved[0].read_text()) == state  # orbax wrote get_state()
  it2 = iter(pipeline.train_dataset(cfg, src))
  with ocp.CheckpointManager(str(tmp_path / "ckpt"), item_names=("data",)) as mngr:
    mngr.restore(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(it2)))
  restored = [next(it2) for _ in range(2)]  # restore = set_state(saved) + start_prefetch()
  pipeline.close(it2)
  assert all(_same(x, y) for x, y in zip(expected, restored))
  if workers:  # worker processes produce exactly the in-process batches
    ref = _take(pipeline.train_dataset(_cfg(workers=0, batch_size=2), src), 5)
    assert all(_same(x, y) for x, y in zip(ref, first + expected))


def test_per_process_batches_cover_each_record_once_per_epoch(file_source):
  cfg = _cfg(batch_size=6, num_frames=2)  # global: 12 records = 2 steps of 3 processes × 2
  for epoch in range(2):
    seen = []
    for pi in range(3):
      batches = _take(pipeline.train_dataset(cfg, file_source, process_index=pi, process_count=3),
                      2 * (epoch + 1))
      assert all(b["clip"].shape[0] == 2 for b in batches)
      seen += [i for b in batches[2 * epoch:] for i in b["index"].tolist()]
    assert sorted(seen) == list(range(12)), f"epoch {epoch}"


def _global(cfg, src, pc, steps, train=True):
  """Per-step concatenation, in process order, of `pc` simulated processes' batches."""
  fn = pipeline.train_dataset if train else pipeline.eval_dataset
  per = [_take(fn(cfg, src, process_index=pi, process_count=pc), steps) for pi in range(pc)]
  return [{k: np.concatenate([p[s][k] for p in per]) for k in per[0][s]} for s in range(steps)]


def test_global_batch_independent_of_process_count(file_source):
  cfg = _cfg(batch_size=8, num_frames=2)
  cfg.train.num_samples = 2  # 4 records × 2 augmented samples per global step
  one = _global(cfg, file_source, 1, 4)
  assert one[0]["clip"].shape == (8, 2, 32, 32, 3)
  np.testing.assert_array_equal(one[0]["index"][0::2], one[0]["index"][1::2])
  assert sorted(np.concatenate([b["index"][::2] for b in one[:3]]).tolist()) == list(range(12))
  for pc in (2, 4):
    many = _global(cfg, file_source, pc, 4)
    for s, (a, b) in enumerate(zip(one, many)):
      assert a.keys() == b.keys() and _same(a, b), (pc, s)
  ecfg = _cfg(eval_batch_size=4, num_frames=2)
  ecfg.eval.num_clips, ecfg.eval.num_crops = 1, 1
  one = _global(ecfg, file_source, 1, 3, train=False)
  assert np.concatenate([b["index"] for b in one]).tolist() == list(range(12))
  for pc in (2, 4):
    many = _global(ecfg, file_source, pc, 3, train=False)
    assert all(_same(a, b) for a, b in zip(one, many)), pc


def test_batch_sizes_are_global_and_must_divide(file_source):
  b = _take(pipeline.train_dataset(_cfg(batch_size=4), file_source, process_index=1,
                                   process_count=2), 1)[0]
  assert b["clip"].shape[0] == 2
  with pytest.raises(ValueError, match=r"data\.batch_size=6 .* process_count=4"):
    pipeline.train_dataset(_cfg(batch_size=6), file_source, process_index=0, process_count=4)
  cfg = _cfg(batch_size=4)
  cfg.train.num_samples = 4
  with pytest.raises(ValueError, match=r"data\.train\.num_samples=4"):
    pipeline.train_dataset(cfg, file_source, process_index=0, process_count=2)
  with pytest.raises(ValueError, match=r"data\.eval_batch_size=5 .* process_count=2"):
    pipeline.eval_dataset(_cfg(eval_batch_size=5), file_source, process_index=0, process_count=2)
  # Eval padding rounds up to a multiple of the global batch: 12 videos, global 8 → 16 slots.
  batches = _take(pipeline.eval_dataset(_cfg(eval_batch_size=8), file_source, process_index=1,
                                        process_count=2), 2)
  assert [len(x["valid"]) for x in batches] == [4, 4]
  np.testing.assert_array_equal(np.concatenate([x["valid"] for x in batches]), [True] * 4 + [False] * 4)


def test_corrupt_files_are_replaced_counted_and_logged(tiny_videos, tmp_path, caplog):
  d, lst = tiny_videos
  good = sources.parse_list_file(lst, d).records[:5]
  data = open(good[0].path, "rb").read()
  bad = {"empty.mp4": b"", "garbage.mp4": b"\x00junk" * 50, "trunc.mp4": data[: len(data) // 3]}
  recs = list(good)
  for name, payload in bad.items():
    (tmp_path / name).write_bytes(payload)
    recs.append(sources.VideoRecord(str(tmp_path / name), 0, name))
  recs.append(sources.VideoRecord(str(tmp_path / "missing.mp4"), 1, "missing"))
  src = sources.VideoFileSource(recs)
  caplog.set_level(logging.WARNING)
  b = _take(pipeline.train_dataset(_cfg(batch_size=9, num_frames=4), src), 1)[0]
  assert b["clip"].shape[0] == 9
  assert set(b["index"].tolist()) <= set(range(5))  # only good records delivered
  assert b["num_replaced"].sum() >= 4  # each bad record needed ≥ 1 replacement
  for name in list(bad) + ["missing.mp4"]:
    assert any(name in r.getMessage() for r in caplog.records), name
  # Deterministic replacement.
  b2 = _take(pipeline.train_dataset(_cfg(batch_size=9, num_frames=4), src), 1)[0]
  assert _same(b, b2)


def test_repeated_augmentation(file_source):
  cfg = _cfg(batch_size=4)
  cfg.train.num_samples = 2
  b = _take(pipeline.train_dataset(cfg, file_source), 1)[0]
  assert b["clip"].shape == (4, 8, 32, 32, 3)
  np.testing.assert_array_equal(b["index"][0::2], b["index"][1::2])
  np.testing.assert_array_equal(b["label"][0::2], b["label"][1::2])
  assert not np.array_equal(b["clip"][0], b["clip"][1])


def test_eval_views_grouped_and_padded(file_source):
  cfg = _cfg(eval_batch_size=5)
  cfg.eval.num_clips, cfg.eval.num_crops = 2, 3
  batches = _take(pipeline.eval_dataset(cfg, file_source), 3)  # 12 videos → 15 slots
  assert batches[0]["clip"].shape == (5, 6, 8, 32, 32, 3)
  valid = np.concatenate([b["valid"] for b in batches])
  idx = np.concatenate([b["index"] for b in batches])
  assert valid.sum() == 12 and sorted(idx[valid].tolist()) == list(range(12))
  labels = np.concatenate([b["label"] for b in batches])
  assert labels[valid].tolist() == [file_source.records[i].label for i in idx[valid]]
  # Deterministic (no randomness in evaluation).
  again = _take(pipeline.eval_dataset(cfg, file_source), 1)[0]
  assert _same(again, batches[0])


def test_to_global_shards_over_data_axis(file_source):
  devices = np.array(jax.devices())
  assert len(devices) == 8
  mesh = jax.sharding.Mesh(devices.reshape(4, 2), ("data", "model"))
  b = _take(pipeline.train_dataset(_cfg(batch_size=8, num_frames=2), file_source), 1)[0]
  g = pipeline.to_global(b, pipeline.data_sharding(mesh))
  assert g["clip"].shape == (8, 2, 32, 32, 3) and g["clip"].dtype == np.uint8
  assert g["clip"].sharding.spec == jax.sharding.PartitionSpec(("data",))
  assert len(g["clip"].addressable_shards) == 8
  assert g["clip"].addressable_shards[0].data.shape == (2, 2, 32, 32, 3)
  np.testing.assert_array_equal(np.asarray(g["clip"]), b["clip"])
  np.testing.assert_array_equal(np.asarray(g["label"]), b["label"])


def test_prepare_data_resumes(tiny_videos, tmp_path):
  import prepare_data
  d, lst = tiny_videos
  out = str(tmp_path / "prep")
  args = ["--annotations", lst, "--video_dir", d, "--labels", os.path.join(d, "classes.txt"),
          "--out", out, "--num_shards", "3", "--workers", "0", "--mode", "video"]
  prepare_data.prepare(prepare_data.parser().parse_args(args))
  shards = sorted(f for f in os.listdir(out) if f.endswith("-of-00003"))
  before = {f: open(os.path.join(out, f), "rb").read() for f in shards}
  mtimes = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in shards}
  os.remove(os.path.join(out, shards[1]))
  os.remove(os.path.join(out, shards[1] + ".json"))
  prepare_data.prepare(prepare_data.parser().parse_args(args))
  for f in shards:
    assert open(os.path.join(out, f), "rb").read() == before[f]
  assert os.stat(os.path.join(out, shards[0])).st_mtime_ns == mtimes[shards[0]]  # skipped
  src = sources.PreparedSource(out, "train")
  assert len(src) == 12 and "video" in src[0]
  b = _take(pipeline.train_dataset(_cfg(batch_size=12), src), 1)[0]  # 'video' mode decodes too
  assert sorted(b["index"].tolist()) == list(range(12))


def test_prepare_frames_resamples_fps_and_short_side(tmp_path):
  import prepare_data

  from vidjax.data import decode, synthetic
  path = str(tmp_path / "ids.mp4")
  synthetic.write_mp4(path, synthetic.frame_id_frames(50, 48, 64), fps=25, gop=10)
  jpegs, fps = prepare_data.encode_frames(path, fps=10, short_side=24, quality=95)
  frames = np.stack([decode.decode_jpeg(j) for j in jpegs])
  assert fps == 10 and frames.shape == (20, 24, 32, 3)  # 2 s at 10 fps, short side 24
  ids = synthetic.read_frame_ids(frames)
  np.testing.assert_array_equal(ids[::2], np.arange(0, 50, 5))  # nearest source frame k·2.5
  assert np.all(np.abs(ids - 2.5 * np.arange(20)) <= 0.5)
