"""SyntheticMNIST and mix through real clients: paddle.io.DataLoader with workers, Paddle's own
MNIST (for the item format), pickling, and torch's DataLoader where torch is installed."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from mnistgen.cli import app

runner = CliRunner()


def generated(model, tmp_path, *args) -> tuple[np.ndarray, np.ndarray]:
    import h5py

    out = tmp_path / "s.h5"
    result = runner.invoke(app, ["generate", "--model", str(model), "-q", "-o", str(out), *[str(a) for a in args]])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outputs"] == [str(out)]
    with h5py.File(out) as f:
        return f["images"][:], f["labels"][:]


@pytest.fixture(scope="module")
def paddle_mnist(mnist_dir):
    """Paddle's own MNIST on the fixture's files: the item format to match."""
    from paddle.vision.datasets import MNIST

    def make(**kwargs):
        return MNIST(
            image_path=str(mnist_dir / "train-images-idx3-ubyte.gz"),
            label_path=str(mnist_dir / "train-labels-idx1-ubyte.gz"),
            download=False,
            **kwargs,
        )

    return make


LOADER_SCRIPT = """
import sys
import numpy as np
import paddle
from paddle.vision.transforms import ToTensor
import mnistgen

ds = mnistgen.SyntheticMNIST(model=sys.argv[1], count=300, seed=3, transform=ToTensor())
# Paddle (2.6.2 and 3.3.1) crashes now and then moving Tensor items through shared memory,
# its own MNIST included: the README's advice
batches = list(paddle.io.DataLoader(ds, batch_size=50, num_workers=2, use_shared_memory=False))
images, labels = batches[0]
assert images.shape == [50, 1, 28, 28] and images.dtype == paddle.float32, images
assert labels.shape == [50, 1] and labels.dtype == paddle.int64, labels
assert ds.blocks_decoded == 0  # the main process loaded nothing: the workers did
np.savez(sys.argv[2], pixels=np.concatenate([b[0].numpy() for b in batches]),
         labels=np.concatenate([b[1].numpy() for b in batches]))
"""


def test_dataloader_with_two_workers_gives_generates_pixels(tmp_path, tiny_cvae):
    """In a fresh interpreter, as a training script runs it."""
    out = tmp_path / "loaded.npz"
    proc = subprocess.run(
        [sys.executable, "-c", LOADER_SCRIPT, str(tiny_cvae), str(out)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    loaded = np.load(out)
    pixels, targets = loaded["pixels"], loaded["labels"][:, 0]
    expected, expected_labels = generated(tiny_cvae, tmp_path, "-d", "all", "-n", 300, "--seed", 3)
    assert pixels.shape == (3000, 1, 28, 28) and 0.0 <= pixels.min() and pixels.max() <= 1.0
    assert np.array_equal(np.rint(pixels[:, 0] * 255).astype(np.uint8), expected)
    assert np.array_equal(targets, expected_labels)


@pytest.mark.parametrize("backend", ["pil", "cv2"])
@pytest.mark.parametrize("with_transform", [False, True])
def test_items_match_paddles_mnist(tiny_cvae, paddle_mnist, backend, with_transform):
    from paddle.vision.transforms import ToTensor
    from PIL import Image

    import mnistgen

    transform = ToTensor() if with_transform else None
    ours = mnistgen.SyntheticMNIST(model=tiny_cvae, count=5, transform=transform, backend=backend)[7]
    theirs = paddle_mnist(transform=transform, backend=backend)[7]
    for mine, real in zip(ours, theirs):
        assert type(mine) is type(real)
        if isinstance(real, Image.Image):
            assert (mine.mode, mine.size) == (real.mode, real.size) == ("L", (28, 28))
        else:
            assert list(mine.shape) == list(real.shape) and mine.dtype == real.dtype
    if backend == "cv2":  # Paddle's cv2 pixels are float32 0-255, and ToTensor does not scale floats
        assert float(ours[0].max()) > 1.0 and float(theirs[0].max()) > 1.0
    assert ours[1].tolist() == [1]  # 5 per class: item 7 is digit 1's third image


def test_item_index_order_and_values(tmp_path, tiny_cvae):
    import mnistgen

    ds = mnistgen.SyntheticMNIST(model=tiny_cvae, count=300, digits=[8, 2], seed=5, backend="cv2")
    expected, expected_labels = generated(tiny_cvae, tmp_path, "-d", "2,8", "-n", 300, "--seed", 5)
    order = [599, 0, 300, 257, 255, 256, -1]  # out of order, across blocks and labels
    for i in order:
        image, label = ds[i]
        assert image.dtype == np.float32 and image.shape == (28, 28)  # Paddle's cv2 items: float32 0-255
        assert np.array_equal(image.astype(np.uint8), expected[i]) and label.tolist() == [expected_labels[i]]
    assert ds[0][1].tolist() == [2] and ds[300][1].tolist() == [8]  # label-major, digits sorted as generate
    with pytest.raises(IndexError):
        ds[600]
    decoded = ds.blocks_decoded
    for i in range(256, 300):
        ds[i]
    assert ds.blocks_decoded == decoded  # read in order: each block is decoded once


def test_classes_by_name_and_an_unconditional_model(tiny_cvae, tiny_vae):
    import mnistgen

    assert mnistgen.SyntheticMNIST(model=tiny_cvae, count=2, classes=["3", 1]).labels_order == [1, 3]
    ds = mnistgen.SyntheticMNIST(model=tiny_vae, count=4, backend="cv2")
    assert len(ds) == 4 and ds[3][1].tolist() == [-1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"count": 0}, "count must be a whole number of images per class, 1 to 10,000,000: got 0"),
        ({"seed": -1}, "seed must be a whole number from 0 to 4294967295: got -1"),
        ({"backend": "tensor"}, "backend 'tensor': use one of pil, cv2, as Paddle's MNIST"),
        ({"digits": 12}, "--digit 12: model tiny-cvae knows labels 0-9 only"),
        ({"digits": 1, "classes": "1"}, "give digits or classes, not both"),
        ({"classes": "Sneaker"}, "--class 'Sneaker': model tiny-cvae has classes"),
        ({"prior": "uniform"}, "prior='uniform': use one of auto, standard, fitted, mixture"),
        ({"transform": 3}, "transform must be callable"),
        ({"model": "no-such-model"}, "no-such-model"),
        ({"device": "tpu"}, "device 'tpu': use one of auto, cpu, gpu"),
        ({"digits": [3.5]}, "digits [3.5]: give a label index (0 or more) or a list of them"),
        ({"cache_blocks": "x"}, "cache_blocks must be a whole number, at least 1: got 'x'"),
    ],
)
def test_bad_arguments_fail_at_construction(tiny_cvae, kwargs, message):
    import mnistgen

    with pytest.raises(mnistgen.MnistgenError, match=None) as caught:
        mnistgen.SyntheticMNIST(**{"model": tiny_cvae, **kwargs})
    assert message in str(caught.value)


def test_pickles_without_paddle_objects(tiny_cvae):
    import mnistgen

    ds = mnistgen.SyntheticMNIST(model=tiny_cvae, count=10, seed=1, backend="cv2")
    first = ds[0][0]
    assert ds._sampler is not None
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._sampler is None and not copy._cache
    assert np.array_equal(copy[0][0], first)


def test_a_gpu_on_a_cpu_build_fails_at_construction(tiny_cvae):
    import paddle

    import mnistgen

    if paddle.is_compiled_with_cuda():
        pytest.skip("a CUDA build: device='gpu' may work here")
    with pytest.raises(mnistgen.MnistgenError, match="^--device gpu: this Paddle is a CPU build"):
        mnistgen.SyntheticMNIST(model=tiny_cvae, count=1, device="gpu")


def test_reading_items_gives_the_callers_device_back(tiny_cvae, callers_device):
    """A training script's own device stays its own while SyntheticMNIST decodes on the CPU."""
    import mnistgen

    ds = mnistgen.SyntheticMNIST(model=tiny_cvae, count=3, device="cpu")
    assert ds[0][1] == ds[2][1] == 0  # decoded
    assert callers_device["device"] == "gpu:1" and "cpu" in callers_device["set"]


def test_mix_gives_the_share_asked_for(tiny_cvae, paddle_mnist):
    import mnistgen

    real = paddle_mnist(backend="cv2")  # 1,000 images
    synthetic = mnistgen.SyntheticMNIST(model=tiny_cvae, count=100, backend="cv2")  # 1,000 images
    mixed = mnistgen.mix(real, synthetic, 0.25, seed=7)
    assert len(mixed) == 1333 and mixed.synthetic_count == 333  # all the real images, a third as many synthetic
    assert abs(mixed.synthetic_count / len(mixed) - 0.25) < 1e-3
    image, label = mixed[0]
    assert image.shape == (28, 28) and label.dtype == np.int64
    again = mnistgen.mix(real, synthetic, 0.25, seed=7)
    assert np.array_equal(again.items, mixed.items) and np.array_equal(again.from_synthetic, mixed.from_synthetic)
    assert not np.array_equal(mnistgen.mix(real, synthetic, 0.25, seed=8).from_synthetic, mixed.from_synthetic)
    picked = mixed.items[mixed.from_synthetic]
    assert len(set(picked.tolist())) == len(picked) and np.all(np.diff(picked) > 0)  # each once, in order
    assert (
        len(mnistgen.mix(real, synthetic, 0.0)) == 1000 and mnistgen.mix(real, synthetic, 1.0).synthetic_count == 1000
    )
    assert len(mnistgen.mix(real, synthetic, 0.5)) == 2000  # the smaller side limits the mix
    with pytest.raises(mnistgen.MnistgenError, match="ratio is the synthetic share"):
        mnistgen.mix(real, synthetic, 1.5)
    with pytest.raises(mnistgen.MnistgenError, match="ratio is the synthetic share"):
        mnistgen.mix(real, synthetic, None)
    with pytest.raises(mnistgen.MnistgenError, match="^real must be a map-style dataset"):
        mnistgen.mix(None, synthetic, 0.5)
    with pytest.raises(mnistgen.MnistgenError, match="^seed must be a whole number from 0 to 4294967295: got -1$"):
        mnistgen.mix(real, synthetic, 0.5, seed=-1)


def test_mix_refuses_items_a_dataloader_cannot_stack(tiny_cvae, paddle_mnist):
    """Paddle's loader thread failed on ndarray and Tensor items in one batch, and the main thread waited for ever."""
    from paddle.vision.transforms import ToTensor

    import mnistgen

    real = paddle_mnist(backend="cv2")  # ndarray items
    synthetic = mnistgen.SyntheticMNIST(model=tiny_cvae, count=10, backend="cv2", transform=ToTensor())
    with pytest.raises(mnistgen.MnistgenError) as caught:
        mnistgen.mix(real, synthetic, 0.5)
    assert str(caught.value) == (
        "real and synthetic items differ (backend cv2, transform NoneType against backend cv2, transform ToTensor): "
        "give the SyntheticMNIST the real dataset's transform and backend"
    )
    plain = mnistgen.SyntheticMNIST(model=tiny_cvae, count=10, backend="cv2")
    assert len(mnistgen.mix(real, plain, 0.5)) == 200 and plain._sampler is None  # judged without reading an item


def test_torch_dataloader_reads_it(tiny_cvae):
    torch = pytest.importorskip("torch")
    import mnistgen

    ds = mnistgen.SyntheticMNIST(model=tiny_cvae, count=20, backend="cv2")
    images, labels = next(iter(torch.utils.data.DataLoader(ds, batch_size=30, num_workers=2)))
    assert tuple(images.shape) == (30, 28, 28) and tuple(labels.shape) == (30, 1)
    assert np.array_equal(images[25].numpy(), ds[25][0])
