"""PyAV sparse decoding returns exactly the requested frames; bad files raise DecodeError."""

import numpy as np
import pytest

from vidjax.data import decode, synthetic


@pytest.fixture(scope="module", params=[200, 8], ids=["gop200", "gop8"])
def id_video(request, tmp_path_factory):
  path = str(tmp_path_factory.mktemp("ids") / f"ids_gop{request.param}.mp4")
  synthetic.write_mp4(path, synthetic.frame_id_frames(60, 48, 64), gop=request.param)
  return path


@pytest.mark.parametrize("indices", [[0, 1, 2], [59, 3, 3, 30], [7, 15, 16, 17, 40, 58, 59],
                                     list(range(0, 60, 7))])
def test_decode_exact_frames(id_video, indices):
  frames = decode.decode_video(id_video, indices)
  assert frames.shape == (len(indices), 48, 64, 3)
  np.testing.assert_array_equal(synthetic.read_frame_ids(frames), indices)


def test_decode_all_and_keyframes(id_video):
  with open(id_video, "rb") as f:
    data = f.read()
  frames = decode.decode_video(data, None)  # from bytes, every frame
  np.testing.assert_array_equal(synthetic.read_frame_ids(frames), np.arange(60))
  with decode.open_container(data) as c:
    idx = decode.packet_index(c)
  gop = 200 if "gop200" in id_video else 8
  assert idx.keyframes == list(range(0, 60, gop))


def test_decode_resized(id_video):
  frames = decode.decode_video(id_video, [5, 33], size=(24, 32))
  assert frames.shape == (2, 24, 32, 3)
  np.testing.assert_array_equal(synthetic.read_frame_ids(frames), [5, 33])


def test_one_open_container_serves_successive_decodes(id_video):
  """The loader reads the index and decodes every sample from one container: each pass seeks
  (backwards too), resizes or not, and gives the frames a fresh decode gives."""
  calls = [([40, 50], None), ([3, 20, 21], (24, 32)), ([59], None), ([0, 1], (24, 32))]
  with decode.open_container(id_video) as c:
    index = decode.packet_index(c)
    for indices, size in calls:
      got = decode.decode_video(c, indices, index=index, size=size)
      np.testing.assert_array_equal(got, decode.decode_video(id_video, indices, size=size))
      np.testing.assert_array_equal(synthetic.read_frame_ids(got), indices)


def test_bad_files_raise_decode_error(tmp_path, id_video):
  data = open(id_video, "rb").read()
  (tmp_path / "empty.mp4").write_bytes(b"")
  (tmp_path / "garbage.mp4").write_bytes(b"\x00garbage" * 100)
  (tmp_path / "trunc.mp4").write_bytes(data[: len(data) // 2])
  for name in ("empty.mp4", "garbage.mp4", "trunc.mp4", "missing.mp4"):
    with pytest.raises(decode.DecodeError):
      decode.decode_video(str(tmp_path / name), [0, 59])
  with pytest.raises(decode.DecodeError, match="outside"):
    decode.decode_video(id_video, [60])


def test_jpeg_reduced_size_decode():
  img = np.tile(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (256, 1, 3))
  data = decode.encode_jpeg(img)
  assert decode.jpeg_size(data) == (256, 320)
  assert decode.decode_jpeg(data).shape == (256, 320, 3)
  half = decode.decode_jpeg(data, min_size=(100, 150))  # libjpeg scales by 1/2 (≥ 100×150)
  assert half.shape == (128, 160, 3)
  assert np.abs(half[:, ::4].astype(int) - img[::2, ::8].astype(int)).mean() < 3
  with pytest.raises(decode.DecodeError):
    decode.decode_jpeg(b"not a jpeg")
