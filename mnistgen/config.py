"""Model configuration: the typed description that travels inside every weights file.

Pure Python (no Paddle, no numpy), so a weights card can be checked - kind, sizes, the
shape of every tensor - before anything heavy is imported or allocated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from mnistgen.errors import MnistgenError

KINDS = ("vae", "cvae")
LIKELIHOODS = ("gaussian", "bernoulli")

# Bounds that keep a card from a stranger from asking for absurd allocations.
MAX_LATENT = 512
MAX_CHANNELS = 1024
MAX_CLASSES = 256
MAX_HIDDEN = 4096

IMAGE_SIZE = 28  # MNIST's side; the architecture is built around 28 -> 14 -> 7
DOWNSAMPLE = 4  # two stride-2 convolutions
KERNEL = 4  # 4x4 kernels, stride 2, padding 1: halves (or doubles) the side exactly
OUT_KERNEL = 3  # the decoder's last 3x3 convolution to one channel


def check_sizes(what: str, sizes, image_size: int) -> None:
    """Each (name, value, top) must be an int in 1..top, and the image MNIST-sized."""
    for name, value, top in sizes:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
            raise MnistgenError(f"{what} config {name}={value!r} is out of range: it must be 1..{top}")
    if image_size != IMAGE_SIZE:
        raise MnistgenError(
            f"{what} config image_size={image_size!r}: only {IMAGE_SIZE}x{IMAGE_SIZE} images are supported"
        )


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the tutorial's conv VAE / CVAE."""

    kind: str = "cvae"  # "vae" (unconditional) or "cvae" (a one-hot label conditions both halves)
    latent: int = 2  # size of z; 2 lets the latent space be drawn, as in the tutorial
    channels: int = 32  # width of the first conv; the second conv has twice as many
    num_classes: int = 10  # size of the one-hot label (CVAE only; MNIST has 10 digits)
    image_size: int = IMAGE_SIZE  # side of the square grayscale input; fixed by the architecture
    likelihood: str = "gaussian"  # "gaussian": tanh output, summed squared error (the tutorial); "bernoulli": sigmoid output, cross-entropy on [0, 1] pixels

    @property
    def conditional(self) -> bool:
        return self.kind == "cvae"

    @property
    def feature_side(self) -> int:
        """Side of the 7x7 feature map between the convs and the dense heads."""
        return self.image_size // DOWNSAMPLE

    def validate(self) -> ModelConfig:
        if self.kind not in KINDS:
            raise MnistgenError(f"unknown model kind {self.kind!r}: use one of {', '.join(KINDS)}")
        check_sizes(
            "model",
            (
                ("latent", self.latent, MAX_LATENT),
                ("channels", self.channels, MAX_CHANNELS),
                ("num_classes", self.num_classes, MAX_CLASSES),
            ),
            self.image_size,
        )
        if self.likelihood not in LIKELIHOODS:
            raise MnistgenError(f"unknown likelihood {self.likelihood!r}: use one of {', '.join(LIKELIHOODS)}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        if not isinstance(data, dict):
            raise MnistgenError(
                "model card has no valid 'config' object: the weights file is damaged; re-export it with mnistgen train"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MnistgenError(
                f"model config has unknown fields {unknown}: it was written by a newer mnistgen; upgrade mnistgen"
            )
        return cls(**data).validate()

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every tensor the model holds (Paddle layouts: Linear is (in, out))."""
        c, d, side = self.channels, self.latent, self.feature_side
        pixels = self.image_size * self.image_size
        label = self.num_classes if self.conditional else 0
        in_ch = 2 if self.conditional else 1
        flat = 2 * c * side * side
        shapes = {
            "encoder.conv1.weight": (c, in_ch, KERNEL, KERNEL),
            "encoder.conv1.bias": (c,),
            "encoder.conv2.weight": (2 * c, c, KERNEL, KERNEL),
            "encoder.conv2.bias": (2 * c,),
            "encoder.mean.weight": (flat, d),
            "encoder.mean.bias": (d,),
            "encoder.logvar.weight": (flat, d),
            "encoder.logvar.bias": (d,),
            "decoder.fc.weight": (d + label, c * side * side),
            "decoder.fc.bias": (c * side * side,),
            "decoder.up1.weight": (c, 2 * c, KERNEL, KERNEL),  # conv-transpose: (in, out, k, k)
            "decoder.up1.bias": (2 * c,),
            "decoder.up2.weight": (2 * c, c, KERNEL, KERNEL),
            "decoder.up2.bias": (c,),
            "decoder.out.weight": (1, c, OUT_KERNEL, OUT_KERNEL),
            "decoder.out.bias": (1,),
        }
        if self.conditional:
            shapes["encoder.label.weight"] = (self.num_classes, pixels)
            shapes["encoder.label.bias"] = (pixels,)
        return shapes

    def param_count(self) -> int:
        total = 0
        for shape in self.param_shapes().values():
            n = 1
            for s in shape:
                n *= s
            total += n
        return total


CLASSIFIER_KERNEL = 5  # 5x5 convolutions, padding 2, each followed by 2x2 max-pooling
JUDGE_KERNEL = 3  # the judge's 3x3 convolutions, padding 1, two per resolution (VGG-style)
CLASSIFIER_ARCHS = ("lenet", "judge")


@dataclass(frozen=True)
class ClassifierConfig:
    """The project's MNIST classifier: scores generated digits and gives FID features."""

    kind: str = "classifier"  # marks the card: a classifier, not a generator
    arch: str = (
        "lenet"  # "lenet": the verifier (2 convs 5x5); "judge": the independent judge (4 convs 3x3 + batch norm)
    )
    channels: int = 32  # width of the first conv; the second has twice as many
    hidden: int = 256  # penultimate features; the classifier-feature FID is computed on these
    num_classes: int = 10  # MNIST's digits
    image_size: int = IMAGE_SIZE  # 28 -> 14 -> 7 through two poolings

    @property
    def conditional(self) -> bool:
        return False

    def validate(self) -> ClassifierConfig:
        if self.arch not in CLASSIFIER_ARCHS:
            raise MnistgenError(f"unknown classifier arch {self.arch!r}: use one of {', '.join(CLASSIFIER_ARCHS)}")
        check_sizes(
            "classifier",
            (
                ("channels", self.channels, MAX_CHANNELS),
                ("hidden", self.hidden, MAX_HIDDEN),
                ("num_classes", self.num_classes, MAX_CLASSES),
            ),
            self.image_size,
        )
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ClassifierConfig:
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise MnistgenError(
                f"classifier config has unknown fields {unknown}: it was written by a newer mnistgen; upgrade mnistgen"
            )
        return cls(**data).validate()

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        if self.arch == "judge":
            return self._judge_shapes()
        c, k, side = self.channels, CLASSIFIER_KERNEL, self.image_size // DOWNSAMPLE
        return {
            "conv1.weight": (c, 1, k, k),
            "conv1.bias": (c,),
            "conv2.weight": (2 * c, c, k, k),
            "conv2.bias": (2 * c,),
            "fc.weight": (2 * c * side * side, self.hidden),
            "fc.bias": (self.hidden,),
            "out.weight": (self.hidden, self.num_classes),
            "out.bias": (self.num_classes,),
        }

    def _judge_shapes(self) -> dict[str, tuple[int, ...]]:
        c, k, side = self.channels, JUDGE_KERNEL, self.image_size // DOWNSAMPLE
        convs = {"conv1": (c, 1), "conv2": (c, c), "conv3": (2 * c, c), "conv4": (2 * c, 2 * c)}
        shapes = {}
        for i, (name, (out, inp)) in enumerate(convs.items(), 1):
            shapes[f"{name}.weight"] = (out, inp, k, k)  # no bias: the batch norm after it has one
            for stat in ("weight", "bias", "_mean", "_variance"):
                shapes[f"bn{i}.{stat}"] = (out,)
        shapes["fc.weight"] = (2 * c * side * side, self.hidden)
        for stat in ("weight", "bias", "_mean", "_variance"):
            shapes[f"bn5.{stat}"] = (self.hidden,)
        shapes["out.weight"] = (self.hidden, self.num_classes)
        shapes["out.bias"] = (self.num_classes,)
        return shapes


def config_from_dict(data) -> ModelConfig | ClassifierConfig:
    """The config class named by the card's `kind`."""
    if isinstance(data, dict) and data.get("kind") == "classifier":
        return ClassifierConfig.from_dict(data)
    return ModelConfig.from_dict(data)
