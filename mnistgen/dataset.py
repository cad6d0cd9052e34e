"""Synthetic digits as a dataset for training loops: `SyntheticMNIST`, shaped like Paddle's
`paddle.vision.datasets.MNIST`; `mix`, which blends it with real data at a given share; and
`BlockShuffle`, the batch sampler that shuffles them without decoding a block per item.

    import mnistgen, paddle
    from paddle.vision.transforms import ToTensor
    ds = mnistgen.SyntheticMNIST(count=6000, seed=0, transform=ToTensor())
    batches = mnistgen.BlockShuffle(ds, batch_size=256, seed=0)
    loader = paddle.io.DataLoader(ds, batch_sampler=batches, num_workers=2, use_shared_memory=False)

Item i is image i of `mnistgen generate` for the same model, seed, sampling options and labels
(label-major: every image of the first label, then the next): the same pixels, decoded in the same
fixed blocks. Images are decoded lazily, a block at a time, and the last few blocks are kept, so
reading in order decodes each block once, and so does BlockShuffle's order: a new permutation of
the blocks each epoch, taken a window of blocks at a time, the window's items shuffled together.
`shuffle=True` would decode a block per item. The constructor checks every argument at once (a
verifying dataset decodes one block there, to judge the threshold) but holds no Paddle objects;
each process that reads items (each DataLoader worker) loads the model on its first item. An
error raised while reading items hangs Paddle's 0-worker DataLoader (Paddle's behaviour), hence
the checks up front. A plain map-style dataset (`__len__`, `__getitem__`): torch's DataLoader
reads it too."""

from __future__ import annotations

import operator
import os
import sys
from collections import OrderedDict
from collections.abc import Sequence
from typing import Callable, Optional, Union

import numpy as np

from mnistgen import checkpoint, decoders, sample, settings
from mnistgen.config import DEFAULT_GENERATOR, UNLABELLED, Precision, PriorKind, SamplingRequest
from mnistgen.errors import MnistgenError
from mnistgen.labels import check_request, check_seed, labels_for, requested_labels
from mnistgen.runtime import Device, check_device, import_paddle, on_device, resolve_device, usable_cpus
from mnistgen.sampling import resolve_sampling

paddle = import_paddle()

BACKENDS = ("pil", "cv2")  # as paddle.vision.datasets.MNIST
DEFAULT_COUNT = 6_000  # per class: about MNIST's 60,000 training images
THRESHOLD_PROBE = 64  # verified images per label the constructor draws to judge --min-confidence
CACHE_BLOCKS = 16  # decoded blocks kept per process: 16 x 256 images, about 3 MiB
STREAM_MIX = 20  # keeps mix()'s random stream apart from generation's and training's
STREAM_BATCHES = 21  # BlockShuffle's, per epoch
MAX_WRAPPERS = 100  # datasets declared_form looks through (Subset of a Subset...): a chain, not a cycle
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
    A verifying dataset (min_confidence > 0, the shipped cvae's default) draws THRESHOLD_PROBE
    verified images of every label on the CPU in the constructor, so a threshold its verifier
    almost never passes for some label is refused there: an error raised while reading items would
    hang Paddle's 0-worker DataLoader.
    `blocks_decoded` counts the blocks this process decoded for items (not that check).
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
        check_request(count, seed)
        if transform is not None and not callable(transform):
            raise MnistgenError(
                f"transform must be callable (e.g. paddle.vision.transforms.ToTensor()): got {transform!r}"
            )
        backend = paddle.vision.get_image_backend() if backend is None else backend
        if backend not in BACKENDS:
            raise MnistgenError(f"backend {backend!r}: use one of {', '.join(BACKENDS)}, as Paddle's MNIST")
        if not settings.is_whole(cache_blocks) or cache_blocks < 1:
            raise MnistgenError(f"cache_blocks must be a whole number, at least 1: got {cache_blocks!r}")
        device = check_device(device)  # a GPU on a CPU build fails here, not at the first item
        request = SamplingRequest.among(locals())  # the sampling keywords, as given: a misspelt choice is refused here
        weights = checkpoint.inspect_role(str(model), "--model")
        chosen = requested_labels(weights, digits, classes)
        self.weights = weights
        self.labels_order = labels_for(weights, chosen)  # label-major order, as generate
        self.count, self.seed, self.transform, self.backend = int(count), int(seed), transform, backend
        self.sampling = resolve_sampling(weights, request)
        self.device, self.cache_blocks = device, int(cache_blocks)
        self.dtype = paddle.get_default_dtype()  # a string: what Paddle's MNIST casts cv2 images to
        self.blocks_decoded = 0  # in this process: a measure of how well the cache serves the access order
        self._reset()
        if self.sampling.verified:
            self._judge_threshold()

    def _judge_threshold(self) -> None:
        """Draw THRESHOLD_PROBE verified images of every label on the CPU, so a threshold the
        verifier almost never passes for any label fails here (MnistgenError); the Paddle objects
        are dropped after."""
        with on_device("cpu"):
            sampler = decoders.make_sampler(self.weights, self.sampling, "cpu")
            for label in self.labels_order:
                sampler.batch(self.seed, label, 0, 0, min(self.count, THRESHOLD_PROBE))

    def _reset(self) -> None:
        self._sampler, self._owner = None, None  # the decoder and the process that built it
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
        labels = "unlabelled" if self.labels_order == [UNLABELLED] else f"labels {self.labels_order}"
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
                device, threads = resolve_device(self.device), None  # the host program's device stays its own
            with on_device(device):
                self._sampler = decoders.make_sampler(self.weights, self.sampling, device, threads=threads)
            self._owner = os.getpid()
        return self._sampler

    def block_of(self, indices: np.ndarray) -> np.ndarray:
        """int64 (n,): the decode block of each item index, numbered label-major (BlockShuffle's groups)."""
        position, within = np.divmod(np.asarray(indices, np.int64), self.count)  # (n,), (n,)
        return position * -(-self.count // sample.BLOCK) + within // sample.BLOCK  # (n,)

    def block(self, label: int, block: int) -> np.ndarray:
        """uint8 (n, 28, 28): the images of `label` in `block` (all BLOCK of them, or the rest of `count`)."""
        key = (label, block)
        if key in self._cache and self._owner == os.getpid():
            self._cache.move_to_end(key)
            return self._cache[key]
        sampler = self.sampler()
        lo, hi = block * sample.BLOCK, min(self.count, (block + 1) * sample.BLOCK)
        images = sampler.batch(self.seed, label, block, lo, hi).images  # inputs placed on the sampler's device
        self.blocks_decoded += 1
        self._cache[key] = images
        while len(self._cache) > self.cache_blocks:
            self._cache.popitem(last=False)
        return images

    def pixels(self, index: int) -> tuple[np.ndarray, int]:
        """uint8 (28, 28) and the label of item `index`, before any backend or transform."""
        position, within = divmod(item_index(index, len(self)), self.count)
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


def item_index(index, length: int) -> int:
    """`index` as a position in 0..length-1 (negative ones count from the end), as a list's; one
    item at a time: a DataLoader batches them."""
    if isinstance(index, slice):
        raise TypeError(f"index one item at a time (a DataLoader batches them): got {index!r}")
    asked = index = operator.index(index)
    if index < 0:
        index += length
    if not 0 <= index < length:
        raise IndexError(f"index {asked} is out of range for {length} images")
    return index


def block_ids(dataset, indices: np.ndarray) -> np.ndarray:
    """int64 (n,): which decode block each of `indices` reads: the dataset's own `block_of` (a
    SyntheticMNIST, a mix), else runs of BLOCK consecutive indices."""
    if hasattr(dataset, "block_of"):
        return dataset.block_of(indices)
    if hasattr(dataset, "dataset") and hasattr(dataset, "indices"):  # a Subset: its items' blocks in the inner set
        return block_ids(dataset.dataset, np.asarray(dataset.indices, np.int64)[np.asarray(indices, np.int64)])
    return np.asarray(indices, np.int64) // sample.BLOCK  # (n,)


def window_order(indices: np.ndarray, blocks: np.ndarray, window: int, rng: np.random.Generator) -> np.ndarray:
    """`indices` (n,) reordered: their blocks (`blocks`, (n,)) in a random order, cut into windows
    of at most `window` blocks (as even as can be: 10 blocks by 3 are 3, 2, 3, 2, so no window holds
    one digit's lone block), the items of each window shuffled together. Reading the result in
    order touches at most `window` blocks at once, so a cache of that many decodes each block once."""
    group, count = dense_groups(blocks)
    rank = np.empty(count, np.int64)
    rank[rng.permutation(count)] = np.arange(count)  # each block's place in this order
    windows = rank[group] * -(-count // window) // max(count, 1)  # (n,): the window each item is read in
    return indices[np.lexsort((rng.random(len(indices)), windows))]  # by window, shuffled within


def dense_groups(blocks: np.ndarray) -> tuple[np.ndarray, int]:
    """`blocks` (n,) renumbered 0..count-1 in order of value (n,), and count."""
    _, group = np.unique(blocks, return_inverse=True)
    group = group.reshape(-1)  # numpy 2.0's inverse took the input's shape
    return group, int(group.max()) + 1 if len(group) else 0


def cache_size(dataset) -> int:
    """Decoded blocks a dataset keeps per process (a mix: its synthetic side's; else CACHE_BLOCKS)."""
    if hasattr(dataset, "dataset") and not hasattr(dataset, "cache_blocks"):  # a Subset: the inner set's
        return cache_size(dataset.dataset)
    inner = getattr(dataset, "synthetic", dataset)
    return int(getattr(inner, "cache_blocks", CACHE_BLOCKS))


class Mixed(paddle.io.Dataset):
    """Items of `real` and `synthetic` interleaved at a fixed synthetic share (see `mix`)."""

    def __init__(self, real, synthetic, ratio: float, seed: int = 0):
        if not settings.is_number(ratio) or not 0.0 <= float(ratio) <= 1.0:
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
        check_seed(seed)
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
        # which items each source gives (spread over it) and where they go (shuffled together); the
        # synthetic ones in a block-window order, so reading the mix in order decodes each block
        # about once and mixes the digits
        real_items = np.sort(rng.choice(have_real, n_real, replace=False)) if n_real else np.zeros(0, np.int64)
        synthetic_items = (
            np.sort(rng.choice(have_synthetic, n_synthetic, replace=False)) if n_synthetic else np.zeros(0, np.int64)
        )
        synthetic_blocks = block_ids(synthetic, synthetic_items)  # (n_synthetic,)
        reorder = np.random.default_rng([int(seed), STREAM_MIX, 1])  # the items and places stay as before
        order = window_order(np.arange(n_synthetic), synthetic_blocks, cache_size(synthetic), reorder)
        synthetic_items, synthetic_blocks = synthetic_items[order], synthetic_blocks[order]
        self.from_synthetic = np.zeros(n_real + n_synthetic, bool)
        self.from_synthetic[rng.permutation(n_real + n_synthetic)[:n_synthetic]] = True
        self.items = np.empty(n_real + n_synthetic, np.int64)
        self.items[self.from_synthetic] = synthetic_items
        self.items[~self.from_synthetic] = real_items
        self.blocks = self._blocks(synthetic_blocks)
        self.real, self.synthetic, self.ratio, self.seed = real, synthetic, ratio, int(seed)

    def _blocks(self, synthetic_blocks: np.ndarray) -> np.ndarray:
        """int64 (n,): each item's group for BlockShuffle: a synthetic item's decode block, and the
        real items dealt evenly over those groups (in runs of BLOCK when there are none)."""
        dense, groups = dense_groups(synthetic_blocks)
        n_real = int((~self.from_synthetic).sum())
        blocks = np.empty(len(self.items), np.int64)
        blocks[self.from_synthetic] = dense
        real_groups = np.arange(n_real) * groups // max(n_real, 1) if groups else np.arange(n_real) // sample.BLOCK
        blocks[~self.from_synthetic] = real_groups
        return blocks

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        share = self.synthetic_count / len(self) if len(self) else 0.0
        return (
            f"<mnistgen.Mixed: {len(self)} items, {self.synthetic_count} synthetic ({share:.1%}) from "
            f"{self.synthetic!r}, seed {self.seed}>"
        )

    @property
    def synthetic_count(self) -> int:
        return int(self.from_synthetic.sum())

    def block_of(self, indices: np.ndarray) -> np.ndarray:
        """int64 (n,): each item's group for BlockShuffle (a synthetic item's decode block)."""
        return self.blocks[np.asarray(indices, np.int64)]  # (n,)

    def __getitem__(self, index):
        index = item_index(index, len(self))
        source = self.synthetic if self.from_synthetic[index] else self.real
        return source[int(self.items[index])]


def declared_form(dataset) -> Optional[tuple[str, str]]:
    """What a dataset says its items are, without reading one (that would move the caller's random
    state and load the model here): (backend, the transform's type) for Paddle's MNIST and a
    SyntheticMNIST, looked up through wrappers that hold one dataset (`paddle.io.Subset`, torch's
    too: a `.dataset`) or several (`paddle.io.ConcatDataset`, when its parts agree); None for a
    dataset that does not say."""
    for _ in range(MAX_WRAPPERS):
        if hasattr(dataset, "backend") and hasattr(dataset, "transform"):
            return str(dataset.backend), type(dataset.transform).__name__
        if isinstance(dataset, paddle.io.ConcatDataset):
            forms = {declared_form(part) for part in dataset.datasets}
            return forms.pop() if len(forms) == 1 else None
        if not hasattr(dataset, "dataset"):
            return None
        dataset = dataset.dataset
    return None


def mix(real, synthetic, ratio: float, seed: int = 0) -> Mixed:
    """A dataset whose items come from `real` and `synthetic` (any map-style datasets with the
    same item format, e.g. Paddle's MNIST and a SyntheticMNIST with the same transform), with a
    share `ratio` (0-1) of synthetic items: as many items as the two allow at that share, each
    item used at most once, interleaved at random by `seed`. The synthetic items come a window
    of blocks at a time (see window_order), so reading the mix in order decodes each block about
    once per process and its batches mix the digits; BlockShuffle(mix(...)) reshuffles it per epoch."""
    return Mixed(real, synthetic, ratio, seed)


class BlockShuffle(paddle.io.BatchSampler):
    """Shuffled batches of a SyntheticMNIST or a mix that decode each block about once per epoch:
    pass it as `paddle.io.DataLoader(dataset, batch_sampler=BlockShuffle(dataset, 256))`.

    Each epoch the dataset's blocks (256 items of one label; a mix groups its real items with them)
    come in a new random order, `window` blocks at a time; the items of a window are shuffled
    together and cut into batches (a batch may run on into the next window), so every batch mixes
    the digits of up to `window` random blocks. Any other map-style dataset is grouped in runs of
    256 consecutive indices.

    Args:
        dataset: a SyntheticMNIST, a mix(...) or any map-style dataset.
        batch_size: indices per batch.
        seed: the orders of every epoch follow from it.
        window: blocks shuffled together, at most the dataset's cache_blocks (default: that, 16).
        drop_last: leave out the last batch when it is short.

    Epochs: iterating it (a DataLoader does once per epoch) uses epoch `self.epoch` (0 at first),
    then counts it up; `set_epoch(n)` sets the next one (as Paddle's DistributedBatchSampler),
    e.g. when resuming training. Each DataLoader worker reads the blocks of the batches it gets:
    with num_workers=0 each block is decoded once per epoch, with num_workers=2 about twice
    (once per worker: the workers take alternate batches).
    """

    def __init__(self, dataset, batch_size: int = 256, seed: int = 0, window: Optional[int] = None, drop_last=False):
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise MnistgenError(
                f"BlockShuffle reads a map-style dataset (len and indexing): got {type(dataset).__name__}"
            )
        if not settings.is_whole(batch_size) or batch_size < 1:
            raise MnistgenError(f"batch_size must be a whole number, at least 1: got {batch_size!r}")
        check_seed(seed)
        kept = cache_size(dataset)
        window = kept if window is None else window
        if not settings.is_whole(window) or not 1 <= window <= kept:
            raise MnistgenError(
                f"window must be a whole number of blocks from 1 to the {kept} the dataset keeps: got {window!r} "
                "(a larger window needs SyntheticMNIST(cache_blocks=...) as large)"
            )
        if not isinstance(drop_last, bool):
            raise MnistgenError(f"drop_last must be True or False: got {drop_last!r}")
        super().__init__(dataset=dataset, batch_size=int(batch_size), drop_last=drop_last)
        self.dataset, self.seed, self.window, self.epoch = dataset, int(seed), int(window), 0
        self.blocks = block_ids(dataset, np.arange(len(dataset)))  # (n,)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration uses (its order follows from seed and epoch)."""
        if not settings.is_whole(epoch) or epoch < 0:
            raise MnistgenError(f"epoch must be a whole number, 0 or more: got {epoch!r}")
        self.epoch = int(epoch)

    def order(self, epoch: int) -> np.ndarray:
        """int64 (n,): every index once, in epoch `epoch`'s order."""
        rng = np.random.default_rng([self.seed, STREAM_BATCHES, int(epoch)])
        return window_order(np.arange(len(self.blocks)), self.blocks, self.window, rng)

    def __iter__(self):
        order, self.epoch = self.order(self.epoch), self.epoch + 1  # now, not at the first batch
        starts = range(0, len(self) * self.batch_size, self.batch_size)
        return (order[start : start + self.batch_size].tolist() for start in starts)

    def __len__(self) -> int:
        whole, rest = divmod(len(self.blocks), self.batch_size)
        return whole + bool(rest and not self.drop_last)

    def __repr__(self) -> str:
        return (
            f"<mnistgen.BlockShuffle: {len(self)} batches of {self.batch_size}, window {self.window} blocks, "
            f"seed {self.seed}, next epoch {self.epoch}>"
        )
