"""mnistgen: VAE / CVAE on MNIST with PaddlePaddle, as a batch generator of synthetic digits.

Importing this package is cheap: nothing here imports Paddle or numpy.
"""

__version__ = "0.1.0"

from mnistgen.errors import MnistgenError  # noqa: E402

__all__ = ["MnistgenError", "__version__"]
