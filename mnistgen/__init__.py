"""mnistgen: VAE / CVAE on MNIST with PaddlePaddle, as a batch generator of synthetic digits.

    import mnistgen
    model = mnistgen.load("cvae-2d")
    images, labels, z = model.generate(digit=7, count=100, seed=0)   # uint8 (100, 28, 28), ...
    ds = mnistgen.SyntheticMNIST(count=6000, transform=ToTensor())   # a paddle.io.Dataset

See `mnistgen.api` for the whole API and `mnistgen.dataset` for the datasets. Importing this
package is cheap: Paddle and numpy are imported on first use of `load` / `fit` / `evaluate` / `models` /
`SyntheticMNIST` / `mix` / `BlockShuffle`.
"""

from mnistgen.errors import MnistgenError
from mnistgen.version import __version__

__all__ = [
    "BlockShuffle",
    "MnistgenError",
    "Model",
    "SyntheticMNIST",
    "__version__",
    "evaluate",
    "fit",
    "load",
    "mix",
    "models",
]


def __getattr__(name):
    if name in ("evaluate", "fit", "load", "models", "Model"):
        from mnistgen import api

        return getattr(api, name)
    if name in ("SyntheticMNIST", "mix", "BlockShuffle"):
        from mnistgen import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'mnistgen' has no attribute {name!r}")


def __dir__():
    """The lazy names too, for tab completion."""
    return sorted(set(globals()) | set(__all__))
