"""Synthetic digits as a dataset for training loops: `SyntheticMNIST`, shaped like Paddle's
`paddle.vision.datasets.MNIST`, and `mix`, which blends it with real data at a given share.

    import mnistgen, paddle
    from paddle.vision.transforms import ToTensor
    ds = mnistgen.SyntheticMNIST(count=6000, seed=0, transform=ToTensor())
    loader = paddle.io.DataLoader(ds, batch_size=64, shuffle=True, num_workers=2)

Item i is image i of `mnistgen generate` for the same model, seed, sampling options and labels
(label-major: every image of the first label, then the next): the same pixels, decoded in the same
fixed blocks. Images are decoded lazily, a block at a time, and the last few blocks are kept, so
reading in order decodes each block once. The constructor checks every argument at once but
holds no Paddle objects; each process that reads items (each DataLoader worker) loads the model
on its first item. A plain map-style dataset (`__len__`, `__getitem__`): torch's DataLoader reads
it too.
"""

from __future__ import annotations

import operator
import os
import sys
from collections import OrderedDict
from collections.abc import Sequence
from typing import Callable, Optional, Union

import numpy as np

from mnistgen import checkpoint, decoders, sample
from mnistgen.config import DEFAULT_GENERATOR, Precision, PriorKind
from mnistgen.errors import MnistgenError
from mnistgen.runtime import Device, check_device, device_kept, import_paddle, on_device, select_device, usable_cpus

paddle = import_paddle()

BACKENDS = ("pil", "cv2")  # as paddle.vision.datasets.MNIST
DEFAULT_COUNT = 6_000  # per class: about MNIST's 60,000 training images
CACHE_BLOCKS = 16  # decoded blocks kept per process: 16 x 256 images, about 3 MiB
STREAM_MIX = 20  # keeps mix()'s random stream apart from generation's and training's
_INHERITED: list = []  # samplers a forked process got from its parent (see SyntheticMNIST.sampler)


def _worker_count() -> int:
    """How many DataLoader workers share this machine, seen from inside one (0 in the main process)."""
    info = paddle.io.get_worker_info()
    if info is None and "torch" in sys.modules:  # a torch DataLoader's worker
        try:
            info = sys.modules["torch"].utils.data.get_worker_info()
        except Exception:
            info = None
    return info.num_workers if info is not None else 0


class SyntheticMNIST(paddle.io.Dataset):
    """`count` synthetic images per class, as `paddle.vision.datasets.MNIST` returns its items.

    Args:
        model: a model name, a .safetensors path or a run directory (default: the shipped `cvae`).
        count: images per class.
        digits / classes: which labels, as indices (digits) or the model card's class names or
            indices (classes; e.g. ["Sneaker", 0]); default all. An unconditional model takes
            neither, and its items are labelled -1.
        seed: the same seed gives the same images as `mnistgen generate --seed`.
        transform: applied to each image, as in Paddle's MNIST (e.g. `ToTensor()`: float32
            (1, 28, 28) in [0, 1]).
        backend: "pil" (a PIL.Image in mode "L") or "cv2" (a numpy float32 (28, 28) array with
            values 0-255, which is what Paddle's MNIST gives: its pixels are kept as float32, and
            the image is cast to Paddle's default dtype after the transform); None takes
            `paddle.vision.get_image_backend()`.
        prior, temperature, truncation, sharpen, min_confidence, classifier, precision: generate's
            sampling options; None takes the model card's recommendation.
        device: where the main process decodes; DataLoader workers decode on the CPU (auto), each
            with its share of the CPU threads.
        cache_blocks: decoded blocks (256 images each) kept per process.

    Items are `(image, label)` with label an int64 numpy array of shape (1,), like Paddle's MNIST.
    """

    def __init__(
        self,
        model: str = DEFAULT_GENERATOR,
        count: int = DEFAULT_COUNT,
        digits: Optional[Union[int, Sequence[int]]] = None,
        classes: Optional[Union[str, int, Sequence[Union[str, int]]]] = None,
        seed: int = 0,
        transform: Optional[Callable] = None,
        backend: Optional[str] = None,
        prior: str = PriorKind.auto.value,
        temperature: Optional[float] = None,
        truncation: Optional[float] = None,
        sharpen: Optional[float] = None,
        min_confidence: Optional[float] = None,
        classifier: Optional[str] = None,
        precision: str = Precision.auto.value,
        device: Union[Device, str] = Device.auto,
        cache_blocks: int = CACHE_BLOCKS,
    ):
        sample.check_request(count, seed)
        if transform is not None and not callable(transform):
            raise MnistgenError(
                f"transform must be callable (e.g. paddle.vision.transforms.ToTensor()): got {transform!r}"
            )
        backend = paddle.vision.get_image_backend() if backend is None else backend
        if backend not in BACKENDS:
            raise MnistgenError(f"backend {backend!r}: use one of {', '.join(BACKENDS)}, as Paddle's MNIST")
        if not sample.is_whole(cache_blocks) or cache_blocks < 1:
            raise MnistgenError(f"cache_blocks must be a whole number, at least 1: got {cache_blocks!r}")
        device = check_device(device)  # a GPU on a CPU build fails here, not at the first item
        prior, precision = sample.choice(PriorKind, prior, "prior"), sample.choice(Precision, precision, "precision")
        weights = checkpoint.inspect_role(str(model), "--model")
        chosen = sample.requested_labels(weights, digits, classes)
        self.weights = weights
        self.labels_order = sample.labels_for(weights, chosen)  # label-major order, as generate
        self.count, self.seed, self.transform, self.backend = int(count), int(seed), transform, backend
        self.sampling = sample.resolve_sampling(
            weights,
            prior=prior,
            temperature=temperature,
            truncation=truncation,
            sharpen=sharpen,
            min_confidence=min_confidence,
            classifier=classifier,
            precision=precision,
        )
        self.device, self.cache_blocks = device, int(cache_blocks)
        self.dtype = paddle.get_default_dtype()  # a string: what Paddle's MNIST casts cv2 images to
        self.blocks_decoded = 0  # in this process: a measure of how well the cache serves the access order
        self._reset()

    def _reset(self) -> None:
        self._sampler, self._owner = None, None  # the decoder and the process that built it
        self._device_name = "cpu"  # where the sampler runs (Paddle's device is set only while it does)
        self._cache: OrderedDict = OrderedDict()

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_sampler=None, _owner=None, _cache=OrderedDict())  # each process loads its own
        return state

    @property
    def name(self) -> str:
        return self.weights.name

    def __len__(self) -> int:
        return len(self.labels_order) * self.count

    def __repr__(self) -> str:
        labels = "unlabelled" if self.labels_order == [sample.UNLABELLED] else f"labels {self.labels_order}"
        return f"<mnistgen.SyntheticMNIST {self.name}: {self.count} per class, {labels}, seed {self.seed}>"

    def sampler(self) -> sample.Sampler:
        """This process's sampler, built on first use (and again in a forked child)."""
        if self._sampler is None or self._owner != os.getpid():
            if self._sampler is not None:  # built by the parent before a fork: never freed here, where
                _INHERITED.append(self._sampler)  # its native threads and handles do not exist
            self._cache.clear()
            workers = _worker_count()
            if workers:  # a worker decodes on the CPU, sharing the threads with its siblings
                device, threads = "cpu", max(1, usable_cpus() // workers)
                paddle.set_device("cpu")  # a worker process's own device: the host program's is in its main process
            else:
                with device_kept():  # the host program's device stays its own
                    device, threads = select_device(self.device), None
            with on_device(device):
                self._sampler = decoders.make_sampler(self.weights, self.sampling, device, threads=threads)
            self._device_name = device
            self._owner = os.getpid()
        return self._sampler

    def block(self, label: int, block: int) -> np.ndarray:
        """uint8 (n, 28, 28): the images of `label` in `block` (all BLOCK of them, or the rest of `count`)."""
        key = (label, block)
        if key in self._cache and self._owner == os.getpid():
            self._cache.move_to_end(key)
            return self._cache[key]
        sampler = self.sampler()
        lo, hi = block * sample.BLOCK, min(self.count, (block + 1) * sample.BLOCK)
        with on_device(self._device_name):
            images = sampler.batch(self.seed, label, block, lo, hi).images
        self.blocks_decoded += 1
        self._cache[key] = images
        while len(self._cache) > self.cache_blocks:
            self._cache.popitem(last=False)
        return images

    def pixels(self, index: int) -> tuple[np.ndarray, int]:
        """uint8 (28, 28) and the label of item `index`, before any backend or transform."""
        asked = index = operator.index(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {asked} is out of range for {len(self)} images")
        position, within = divmod(index, self.count)
        label = self.labels_order[position]
        return self.block(label, within // sample.BLOCK)[within % sample.BLOCK], label

    def __getitem__(self, index):
        pixels, label = self.pixels(index)
        if self.backend == "pil":
            from PIL import Image

            image = Image.fromarray(pixels.copy())  # mode "L"; a copy: the cache stays untouched
        else:
            image = pixels.astype(np.float32)  # Paddle's MNIST keeps its pixels as float32 0-255
        if self.transform is not None:
            image = self.transform(image)
        target = np.array([label], dtype=np.int64)
        if self.backend == "pil":
            return image, target
        return image.astype(self.dtype), target


class Mixed(paddle.io.Dataset):
    """Items of `real` and `synthetic` interleaved at a fixed synthetic share (see `mix`)."""

    def __init__(self, real, synthetic, ratio: float, seed: int = 0):
        if not sample.is_number(ratio) or not 0.0 <= float(ratio) <= 1.0:
            raise MnistgenError(f"ratio is the synthetic share of the mix, from 0 to 1: got {ratio!r}")
        ratio = float(ratio)
        for name, source in (("real", real), ("synthetic", synthetic)):
            if not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
                raise MnistgenError(
                    f"{name} must be a map-style dataset (len and indexing): got {type(source).__name__}"
                )
        have_real, have_synthetic = len(real), len(synthetic)
        if (ratio < 1 and not have_real) or (ratio > 0 and not have_synthetic):
            raise MnistgenError(f"cannot mix {have_synthetic} synthetic and {have_real} real items at ratio {ratio:g}")
        sample.check_seed(seed)
        forms = declared_form(real), declared_form(synthetic)
        if 0 < ratio < 1 and None not in forms and forms[0] != forms[1]:  # a DataLoader could not batch them
            (real_backend, real_transform), (backend, transform) = forms
            raise MnistgenError(
                f"real and synthetic items differ (backend {real_backend}, transform {real_transform} against backend "
                f"{backend}, transform {transform}): give the SyntheticMNIST the real dataset's transform and backend"
            )
        if ratio == 0.0:
            total = have_real
        elif ratio == 1.0:
            total = have_synthetic
        else:  # as many items as both sources allow at this share
            total = int(min(have_real / (1 - ratio), have_synthetic / ratio))
        n_synthetic = min(have_synthetic, round(ratio * total))
        n_real = min(have_real, total - n_synthetic)
        rng = np.random.default_rng([int(seed), STREAM_MIX])
        # which items each source gives (spread over it, in index order: a SyntheticMNIST read in
        # order decodes each block once) and where they go (shuffled together)
        real_items = np.sort(rng.choice(have_real, n_real, replace=False)) if n_real else np.zeros(0, np.int64)
        synthetic_items = (
            np.sort(rng.choice(have_synthetic, n_synthetic, replace=False)) if n_synthetic else np.zeros(0, np.int64)
        )
        self.from_synthetic = np.zeros(n_real + n_synthetic, bool)
        self.from_synthetic[rng.permutation(n_real + n_synthetic)[:n_synthetic]] = True
        self.items = np.empty(n_real + n_synthetic, np.int64)
        self.items[self.from_synthetic] = synthetic_items
        self.items[~self.from_synthetic] = real_items
        self.real, self.synthetic, self.ratio, self.seed = real, synthetic, ratio, int(seed)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def synthetic_count(self) -> int:
        return int(self.from_synthetic.sum())

    def __getitem__(self, index):
        source = self.synthetic if self.from_synthetic[index] else self.real
        return source[int(self.items[index])]


def declared_form(dataset) -> Optional[tuple[str, str]]:
    """What a dataset says its items are, without reading one (that would move the caller's random
    state and load the model here): (backend, the transform's type) for Paddle's MNIST and a
    SyntheticMNIST; None for a dataset that does not say."""
    if not (hasattr(dataset, "backend") and hasattr(dataset, "transform")):
        return None
    return str(dataset.backend), type(dataset.transform).__name__


def mix(real, synthetic, ratio: float, seed: int = 0) -> Mixed:
    """A dataset whose items come from `real` and `synthetic` (any map-style datasets with the
    same item format, e.g. Paddle's MNIST and a SyntheticMNIST with the same transform), with a
    share `ratio` (0-1) of synthetic items: as many items as the two allow at that share, each
    item used at most once, interleaved at random by `seed`."""
    return Mixed(real, synthetic, ratio, seed)
