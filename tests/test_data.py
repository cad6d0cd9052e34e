"""Reading MNIST: IDX (gz and raw), the tutorial's .mat, the cache, downloads, bad files."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from mnistgen import data, sources
from mnistgen.errors import MnistgenError


def test_fixture_loads_as_uint8_with_test_split(dataset):
    assert dataset.train.images.shape == (1000, 28, 28)
    assert dataset.train.images.dtype == np.uint8
    assert dataset.train.labels.shape == (1000,)
    assert set(np.unique(dataset.train.labels)) == set(range(10))
    assert dataset.test is not None and len(dataset.test) == 200


def test_scaling_to_minus_one_one(dataset):
    x = data.to_unit_range(dataset.train.images[:5])
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32
    assert x.min() == -1.0 and x.max() == 1.0


def test_shifts_fill_with_each_image_s_background(dataset):
    """A shift uncovers pixels: MNIST's are black as before, a dark-on-light picture's light (black
    fill drew dark frames round light pictures, and the generator learnt them)."""
    from mnistgen import classifier

    light = 255 - dataset.train.images[:4]  # dark digits on white
    images = np.concatenate([dataset.train.images[:4], light])
    assert data.background(images).tolist() == [0] * 4 + [255] * 4
    split = np.zeros((1, 28, 28), np.uint8)
    split[0, :14] = 255  # half the ring white: the fill is one of its values, not a grey between
    assert data.background(split).tolist() in ([0], [255])
    moved = data.shift_images(images, 2, np.random.default_rng(0))
    ring = np.concatenate([moved[:, [0, -1], :].reshape(8, -1), moved[:, :, [0, -1]].reshape(8, -1)], axis=1)
    assert (ring[:4] == 0).all() and (ring[4:] == 255).all()
    x = classifier.paddle.to_tensor(data.to_unit_range(images))
    for distort in (classifier._shift, classifier._affine):
        out = distort(x, np.random.default_rng(3)).numpy()  # (8, 1, 28, 28) in [-1, 1]
        assert out[:4, :, :2].max() == -1 and out[4:, :, :2].min() > 0.99, distort.__name__


def test_uncompressed_idx_reads_the_same(tmp_path, mnist_dir, dataset):
    for gz in mnist_dir.glob("*.gz"):
        (tmp_path / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))
    raw = sources.load(tmp_path)
    assert np.array_equal(raw.train.images, dataset.train.images)
    assert np.array_equal(raw.test.labels, dataset.test.labels)


def test_truncated_gzip_is_refused(tmp_path, mnist_dir):
    shutil.copytree(mnist_dir, tmp_path / "d")
    target = tmp_path / "d" / "train-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:5000])
    with pytest.raises(MnistgenError, match="truncated or corrupt gzip"):
        sources.load(tmp_path / "d")


def test_truncated_raw_idx_is_refused(tmp_path, dataset):
    data.write_idx(tmp_path / "train-images-idx3-ubyte", dataset.train.images)
    data.write_idx(tmp_path / "train-labels-idx1-ubyte", dataset.train.labels)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(MnistgenError, match="header promises .* the file is truncated"):
        sources.load(tmp_path)


def test_wrong_magic_is_refused(tmp_path, dataset):
    # labels written where the images belong
    data.write_idx(tmp_path / "train-images-idx3-ubyte.gz", dataset.train.labels)
    data.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", dataset.train.labels)
    with pytest.raises(MnistgenError, match="IDX magic number 2049, expected 2051"):
        sources.load(tmp_path)


def test_mismatched_counts_are_refused(tmp_path, dataset):
    data.write_idx(tmp_path / "train-images-idx3-ubyte.gz", dataset.train.images[:10])
    data.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", dataset.train.labels[:9])
    with pytest.raises(MnistgenError, match="has 10 images but train-labels-idx1-ubyte.gz has 9 labels"):
        sources.load(tmp_path)


def test_directory_without_mnist_names_the_fix(tmp_path):
    expected = "holds no image files and no MNIST IDX files: pass an MNIST IDX directory, an ImageFolder"
    with pytest.raises(MnistgenError, match=expected):
        sources.load(tmp_path)


def test_tutorial_mat_layout(tmp_path, dataset):
    import h5py

    n = 50
    images = dataset.train.images[:n].astype(np.float32) / 255.0
    onehot = np.eye(10, dtype=np.float32)[dataset.train.labels[:n]]
    with h5py.File(tmp_path / "train.mat", "w") as f:
        f["image"] = images.transpose(0, 2, 1)[:, None]  # (N, 1, 28, 28), rows and columns swapped
        f["label"] = onehot
    got = sources.load(tmp_path / "train.mat")
    assert got.test is None
    assert np.array_equal(got.train.images, dataset.train.images[:n])
    assert np.array_equal(got.train.labels, dataset.train.labels[:n])


def test_cache_is_used_when_no_data_given(tmp_path, monkeypatch, mnist_dir):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path))
    with pytest.raises(
        MnistgenError, match=r"MNIST is not in the cache .*: pass --data DIR \(the four IDX files\) or --download"
    ):
        sources.load()
    shutil.copytree(mnist_dir, tmp_path / data.MNIST_SUBDIR)
    assert len(sources.load().train) == 1000


def test_download_offline_says_pass_data(tmp_path, monkeypatch):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(data, "MIRRORS", ("http://127.0.0.1:9/",))  # nothing listens on port 9
    with pytest.raises(MnistgenError, match=r"cannot download MNIST \(1 mirrors failed; offline\?\): pass --data DIR"):
        sources.load(download=True)
    assert not list((tmp_path / data.MNIST_SUBDIR).iterdir())  # nothing half-written


def test_download_checksums(mnist_dir):
    spec = data.MNIST_FILES["train_labels"]
    payload = (mnist_dir / "train-labels-idx1-ubyte.gz").read_bytes()
    # the fixture is a subset, so its md5 is wrong: refused
    with pytest.raises(MnistgenError, match="wrong checksum"):
        data.verify("train-labels-idx1-ubyte.gz", payload, spec)
    with pytest.raises(MnistgenError, match="truncated"):
        data.verify("train-labels-idx1-ubyte.gz", payload[:40], spec)
    # accepted by the md5 of the uncompressed bytes (recompressed files keep it) ...
    raw_ok = data.MnistFile(spec.stem, "0" * 32, data.md5_of(gzip.decompress(payload)))
    assert data.verify("x.gz", payload, raw_ok) == payload
    # ... or by the md5 of the .gz itself
    assert data.verify("x.gz", payload, data.MnistFile(spec.stem, data.md5_of(payload), "0" * 32)) == payload
