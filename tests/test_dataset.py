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


def run_script(script: str, model, out):
    """Run `script` MODEL OUT in a fresh interpreter, as a training script runs; its arrays (OUT, .npz)."""
    proc = subprocess.run(
        [sys.executable, "-c", script, str(model), str(out)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    return np.load(out)


def test_dataloader_with_two_workers_gives_generates_pixels(tmp_path, tiny_cvae):
    """In a fresh interpreter, as a training script runs it."""
    loaded = run_script(LOADER_SCRIPT, tiny_cvae, tmp_path / "loaded.npz")
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
        (
            {"digits": [3, "x"]},
            "digits [3, 'x']: digits= takes label indices (0 or more); give class names as classes=[3, 'x']",
        ),
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
    assert len(set(picked.tolist())) == len(picked)  # each once
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


@pytest.mark.parametrize("wrapper", [None, "Subset", "ConcatDataset"])
def test_mix_refuses_items_a_dataloader_cannot_stack(tiny_cvae, paddle_mnist, wrapper):
    """Paddle's loader thread failed on ndarray and Tensor items in one batch, and the main thread waited for ever
    (a Subset-wrapped real set was let through, and then hung the loader)."""
    import paddle
    from paddle.vision.transforms import ToTensor

    import mnistgen

    real = paddle_mnist(backend="cv2")  # ndarray items
    if wrapper == "Subset":
        real = paddle.io.Subset(real, list(range(1000)))
    elif wrapper == "ConcatDataset":
        real = paddle.io.ConcatDataset([paddle.io.Subset(real, list(range(500))), paddle.io.Subset(real, [0] * 500)])
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


def batches_of(sampler) -> list[np.ndarray]:
    return [np.asarray(batch) for batch in sampler]


def test_block_shuffle_gives_every_index_once_in_mixed_batches(tiny_cvae):
    import paddle

    import mnistgen

    ds = mnistgen.SyntheticMNIST(model=tiny_cvae, count=300, seed=0, backend="cv2")  # 20 blocks: 256 + 44 a digit
    sampler = mnistgen.BlockShuffle(ds, batch_size=256, seed=1, window=4)
    assert isinstance(sampler, paddle.io.BatchSampler) and len(sampler) == 12
    first = batches_of(sampler)
    assert [len(b) for b in first] == [256] * 11 + [184] and sorted(np.concatenate(first).tolist()) == list(range(3000))
    assert all(len(set((b // 300).tolist())) > 1 for b in first)  # a window of 4 blocks spans 2 digits or more
    assert sampler.epoch == 1
    second = batches_of(sampler)  # the next epoch: another order
    assert sorted(np.concatenate(second).tolist()) == list(range(3000))
    assert not np.array_equal(np.concatenate(first), np.concatenate(second))
    again = mnistgen.BlockShuffle(ds, batch_size=256, seed=1, window=4)
    assert all(np.array_equal(a, b) for a, b in zip(batches_of(again), first))  # the same seed, the same epochs
    again.set_epoch(1)
    assert all(np.array_equal(a, b) for a, b in zip(batches_of(again), second))
    dropped = batches_of(mnistgen.BlockShuffle(ds, batch_size=256, seed=1, drop_last=True))
    assert len(dropped) == 11 and {len(b) for b in dropped} == {256}
    assert len(set(np.concatenate(dropped).tolist())) == 11 * 256


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size must be a whole number, at least 1: got 0"),
        ({"window": 17}, "window must be a whole number of blocks from 1 to the 16 the dataset keeps: got 17 "),
        ({"seed": -1}, "seed must be a whole number from 0 to 4294967295: got -1"),
        ({"drop_last": "yes"}, "drop_last must be True or False: got 'yes'"),
    ],
)
def test_block_shuffle_refuses_bad_arguments(tiny_cvae, kwargs, message):
    import mnistgen

    ds = mnistgen.SyntheticMNIST(model=tiny_cvae, count=10)
    with pytest.raises(mnistgen.MnistgenError) as caught:
        mnistgen.BlockShuffle(ds, **kwargs)
    assert str(caught.value).startswith(message)


def test_block_shuffle_decodes_each_block_once_an_epoch_through_a_dataloader(tiny_cvae):
    import paddle

    import mnistgen

    ds = mnistgen.SyntheticMNIST(model=tiny_cvae, count=300, seed=0, backend="cv2")
    sampler = mnistgen.BlockShuffle(ds, batch_size=100, seed=0)
    loader = paddle.io.DataLoader(ds, batch_sampler=sampler)
    expected = np.concatenate(batches_of(mnistgen.BlockShuffle(ds, batch_size=100, seed=0))) // 300
    labels = np.concatenate([batch[1].numpy()[:, 0] for batch in loader])
    assert np.array_equal(labels, expected) and ds.blocks_decoded == 20  # in the sampler's order, each block once
    for _ in loader:
        pass
    assert 20 < ds.blocks_decoded <= 40 and sampler.epoch == 2  # at most once more (the cache kept a few)


def test_mix_reads_its_synthetic_items_across_digits_in_order(tiny_cvae, paddle_mnist):
    import mnistgen

    real = paddle_mnist(backend="cv2")  # 1,000 images
    synthetic = mnistgen.SyntheticMNIST(model=tiny_cvae, count=100, backend="cv2")  # a block per digit
    mixed = mnistgen.mix(real, synthetic, 0.25, seed=7)
    labels = np.array([mixed[i][1][0] for i in range(len(mixed))])
    from_synthetic = mixed.from_synthetic
    for start in range(0, 3 * 64, 64):  # the first batches of 64, read in order
        assert len(set(labels[start : start + 64][from_synthetic[start : start + 64]].tolist())) > 1
    assert synthetic.blocks_decoded == 10  # read in order: each block once
    sampler = mnistgen.BlockShuffle(mixed, batch_size=64, seed=0, window=3)
    batches = batches_of(sampler)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(mixed)))
    synthetic_labels = [set(labels[b[from_synthetic[b]]].tolist()) for b in batches[:-1]]
    assert all(len(digits) > 1 for digits in synthetic_labels)


def test_an_impossible_min_confidence_fails_at_construction(tiny_cvae, tiny_classifier):
    import mnistgen

    with pytest.raises(mnistgen.MnistgenError) as caught:
        mnistgen.SyntheticMNIST(model=tiny_cvae, count=10, min_confidence=1.0, classifier=str(tiny_classifier))
    assert str(caught.value) == (  # 256 candidates, then redraws until 1,000 were judged
        "--min-confidence 1: only 0.00% of samples of label 0 pass after 1024 tries; "
        "lower --min-confidence or use a better model"
    )
    ds = mnistgen.SyntheticMNIST(model=tiny_cvae, count=10, min_confidence=0.05, classifier=str(tiny_classifier))
    assert ds._sampler is None and ds.blocks_decoded == 0  # judged, and nothing Paddle kept: it still pickles
    assert pickle.loads(pickle.dumps(ds))[3][1].tolist() == [0]


def test_mixed_repr_and_indexing(tiny_cvae, paddle_mnist):
    import mnistgen

    synthetic = mnistgen.SyntheticMNIST(model=tiny_cvae, count=100, backend="cv2")
    mixed = mnistgen.mix(paddle_mnist(backend="cv2"), synthetic, 0.25, seed=7)
    assert repr(mixed) == (
        "<mnistgen.Mixed: 1333 items, 333 synthetic (25.0%) from <mnistgen.SyntheticMNIST tiny-cvae: 100 per class, "
        "labels [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], seed 0>, seed 7>"
    )
    for dataset in (mixed, synthetic):
        with pytest.raises(TypeError, match=r"^index one item at a time \(a DataLoader batches them\): got slice"):
            dataset[0:2]
        with pytest.raises(IndexError, match=f"^index {len(dataset)} is out of range for {len(dataset)} images$"):
            dataset[len(dataset)]
    assert np.array_equal(mixed[-1][0], mixed[len(mixed) - 1][0])


SHUFFLED_SCRIPT = """
import sys
import numpy as np
import paddle
import mnistgen

ds = mnistgen.SyntheticMNIST(model=sys.argv[1], count=300, seed=3, backend="cv2")
sampler = mnistgen.BlockShuffle(ds, batch_size=100, seed=0)
loader = paddle.io.DataLoader(ds, batch_sampler=sampler, num_workers=2, use_shared_memory=False)
batches = list(loader)
order = np.concatenate([np.asarray(b) for b in mnistgen.BlockShuffle(ds, batch_size=100, seed=0)])
np.savez(sys.argv[2], pixels=np.concatenate([b[0].numpy() for b in batches]), order=order)
"""


def test_block_shuffle_with_two_workers_gives_the_samplers_order(tmp_path, tiny_cvae):
    """In a fresh interpreter, as a training script runs it: the workers' batches come back in the sampler's order."""
    loaded = run_script(SHUFFLED_SCRIPT, tiny_cvae, tmp_path / "shuffled.npz")
    expected, _ = generated(tiny_cvae, tmp_path, "-d", "all", "-n", 300, "--seed", 3)
    assert sorted(loaded["order"].tolist()) == list(range(3000))
    assert np.array_equal(loaded["pixels"].astype(np.uint8), expected[loaded["order"]])


def test_block_shuffle_looks_through_a_subset(tiny_cvae):
    """random_split gives Subsets: grouped by their items' indices they decoded 100x the blocks."""
    import paddle

    import mnistgen

    ds = mnistgen.SyntheticMNIST(model=tiny_cvae, count=300, seed=0, backend="cv2")  # 20 blocks
    part = paddle.io.Subset(ds, list(range(0, len(ds), 2)))
    for _ in paddle.io.DataLoader(part, batch_sampler=mnistgen.BlockShuffle(part, batch_size=100, seed=0)):
        pass
    assert ds.blocks_decoded == 20
