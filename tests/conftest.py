"""Shared fixtures: the MNIST subset shipped in tests/fixtures and tiny models trained on it.

The models are trained once per session on the CPU (a few seconds each) with the real
training loop; nothing here mocks Paddle's compute. Two fixtures stand in for what a CPU build
cannot show: a GPU that fails (broken_gpu) and a host program's own device (callers_device).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GLOG_minloglevel", "2")

FIXTURE_MNIST = Path(__file__).parent / "fixtures" / "mnist"
TINY_CHANNELS = 8  # a narrow model: trains in seconds, still the real architecture
TINY_EPOCHS = 2
TINY_IMAGES = 500


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return FIXTURE_MNIST


@pytest.fixture(scope="session")
def dataset():
    from mnistgen import sources

    return sources.load(FIXTURE_MNIST)


def _train_tiny(root: Path, kind: str, dataset) -> Path:
    from mnistgen import train
    from mnistgen.config import ModelConfig
    from mnistgen.data import Dataset

    small = Dataset(dataset.train.subset(slice(0, TINY_IMAGES)), dataset.test, dataset.source)
    run = root / f"tiny-{kind}"
    train.train(
        ModelConfig(kind=kind, channels=TINY_CHANNELS),
        small,
        train.TrainOptions(epochs=TINY_EPOCHS, seed=1, companion=False),
        run,
    )
    return run


@pytest.fixture(scope="session")
def tiny_cvae(tmp_path_factory, dataset) -> Path:
    """Run directory of a tiny CVAE (use as --model RUN_DIR)."""
    return _train_tiny(tmp_path_factory.mktemp("models"), "cvae", dataset)


@pytest.fixture(scope="session")
def tiny_vae(tmp_path_factory, dataset) -> Path:
    return _train_tiny(tmp_path_factory.mktemp("models"), "vae", dataset)


@pytest.fixture(scope="session", autouse=True)
def quick_calibration():
    """`train` ends with a companion classifier and a calibration: a few steps and samples here
    (the same code, less work; subprocesses pass --no-classifier)."""
    from mnistgen import calibrate

    calibrate.COMPANION_STEPS = (20, 20)
    calibrate.PER_LABEL = 6
    calibrate.TEMPERATURES = (1.0,)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Keep the tests' cache (exported predictors) out of the user's home."""
    from mnistgen import data

    os.environ[data.CACHE_ENV] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory, dataset) -> Path:
    """A classifier trained for two epochs on the fixture (about 65% accurate: enough to test the plumbing)."""
    from mnistgen import classifier

    options = classifier.ClassifierOptions(epochs=2, seed=0)
    net, history = classifier.train(dataset.train, dataset.test, options)
    run = tmp_path_factory.mktemp("models") / "tiny-classifier"
    classifier.save(net, history, options, run, "fixture", len(dataset.train))
    return run


@pytest.fixture(scope="session")
def tiny_judge(tmp_path_factory, dataset) -> Path:
    """The judge architecture (4 convs + batch norm, affine augmentation), one epoch on the fixture:
    an independent grader for the plumbing, another sha256 than tiny_classifier."""
    from mnistgen import classifier
    from mnistgen.config import ClassifierConfig

    options = classifier.ClassifierOptions(epochs=1, seed=0)
    net, history = classifier.train(dataset.train, dataset.test, options, ClassifierConfig(arch="judge", channels=8))
    run = tmp_path_factory.mktemp("models") / "tiny-judge"
    classifier.save(net, history, options, run, "fixture", len(dataset.train))
    return run


HANG_SECONDS = 120  # a hostile-file test that runs longer has blocked on a FIFO: end the run, loudly


@pytest.fixture
def no_hang():
    """A test that feeds the code a FIFO hangs for ever if a guard regresses: past HANG_SECONDS the
    whole run stops with every thread's stack on stderr, so CI fails instead of waiting."""
    import faulthandler

    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


CUDNN_ERROR = "(PreconditionNotMet) Cannot load cudnn shared library. Cannot invoke method cudnnGetVersion."


@pytest.fixture
def broken_gpu(monkeypatch):
    """A CUDA machine whose GPU fails mnistgen's test convolution as Paddle does without cuDNN: only
    runtime.probe_gpu (the GPU's boundary) is replaced, and what this process had probed is forgotten.
    Gives the list of GPU indices probed."""
    from mnistgen import runtime

    probed = []

    def probe_gpu(paddle, index):
        probed.append(index)
        raise RuntimeError(
            f"{CUDNN_ERROR}\n\n  [Hint: Please check the cuDNN install.] (at /paddle/dynload/cudnn.cc:64)"
        )

    monkeypatch.setattr(runtime, "probe_gpu", probe_gpu)
    monkeypatch.setattr(runtime, "_GPU_TESTED", {})
    monkeypatch.setattr(runtime, "_NOTED", set())
    return probed


@pytest.fixture
def callers_device(monkeypatch):
    """A host program whose Paddle device is "gpu:1": a CPU build can hold that name but not use it,
    so set_device records each name asked for (and sets the CPU for real) and get_device gives the
    last back. Gives the record: {"device": the current name, "set": every name set, in order}."""
    from mnistgen.runtime import import_paddle

    paddle = import_paddle()
    real = paddle.set_device
    record = {"device": "gpu:1", "set": []}

    def set_device(name):
        record["device"] = name
        record["set"].append(name)
        return real("cpu")

    monkeypatch.setattr(paddle, "set_device", set_device)
    monkeypatch.setattr(paddle, "get_device", lambda: record["device"])
    return record
