"""Model configuration: the typed description that travels inside every weights file, and the
choices (str enums) that the library and the CLI share, defined once.

Pure Python (no Paddle, no numpy), so a weights card can be checked - kind, sizes, the
shape of every tensor - before anything heavy is imported or allocated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from typing import NamedTuple, Optional

from mnistgen.errors import MnistgenError


class Kind(str, Enum):
    """What a generator is: unconditional, or conditioned on a one-hot label."""

    vae = "vae"
    cvae = "cvae"


class TrainKind(str, Enum):
    """What `train` makes: a generator, or the classifier that verifies and judges samples."""

    vae = "vae"
    cvae = "cvae"
    classifier = "classifier"


class Likelihood(str, Enum):
    """The decoder's output distribution: tanh + squared error (the tutorial), or sigmoid + cross-entropy."""

    gaussian = "gaussian"
    bernoulli = "bernoulli"


class PriorKind(str, Enum):
    """Where latents come from: the card's choice, N(0, I), the Gaussian fitted per label, or the
    Gaussian mixture fitted per label."""

    auto = "auto"
    standard = "standard"
    fitted = "fitted"
    mixture = "mixture"


class Precision(str, Enum):
    """The CPU decoder's arithmetic: bf16 where the CPU has fast bfloat16 (auto), or as asked."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


class Format(str, Enum):
    """What `generate` writes."""

    png = "png"
    hdf5 = "hdf5"
    npz = "npz"
    idx = "idx"
    grid = "grid"
    tar = "tar"


class SettingRange(NamedTuple):
    option: str
    low: float
    high: float


# The ranges of the sampling settings: what the options accept (mnistgen.cli) and what a model card may
# recommend (settings.py), decided here once.
SETTING_RANGES = {  # card key -> its option and range
    "temperature": SettingRange("--temperature", 0.0, 10.0),
    "sharpen": SettingRange("--sharpen", 1.0, 10.0),
    "truncation": SettingRange("--truncation", 0.0, 100.0),  # 0: no truncation
    "min_confidence": SettingRange("--min-confidence", 0.0, 1.0),  # 0: every sample is kept
}


def choice(kind: type, value, option: str) -> str:
    """A choice given to the API (`prior`, `precision`): None is "auto" (the card's, or the
    machine's), anything else must be one of the option's values."""
    if value is None:
        return kind.auto.value
    try:
        return kind(value).value
    except ValueError:
        raise MnistgenError(f"{option}={value!r}: use one of {', '.join(k.value for k in kind)}") from None


def option_name(key: str) -> str:
    """The command-line option that sets a keyword of the Python API: min_confidence -> --min-confidence."""
    return "--" + key.replace("_", "-")


@dataclass(frozen=True)
class SamplingRequest:
    """What a caller asks of sampling, before any model card is read: the keywords of
    Model.generate, SyntheticMNIST and mnistgen.evaluate and the options of generate and evaluate,
    with their defaults, defined here once. None (and "auto") leave a setting to the model card's
    recommendation, else the library default; sampling.resolve_sampling decides them, once, into
    the `Sampling` every job carries. Pure Python, so the CLI builds one before Paddle is imported.

    The choices (prior, precision) are checked when the request is made, so a misspelt one is
    refused before a model loads; the numbers are checked against SETTING_RANGES where they are
    resolved (settings.recommended), as a card's are."""

    temperature: Optional[float] = None
    sharpen: Optional[float] = None
    truncation: Optional[float] = None  # 0: keep every draw
    min_confidence: Optional[float] = None  # 0: keep every sample
    prior: Optional[str] = PriorKind.auto.value
    classifier: Optional[str] = None  # the verifier: names or paths, comma-separated; None: the card's, else shipped
    precision: Optional[str] = Precision.auto.value

    def __post_init__(self):
        object.__setattr__(self, "prior", choice(PriorKind, self.prior, "prior"))
        object.__setattr__(self, "precision", choice(Precision, self.precision, "precision"))

    @classmethod
    def among(cls, arguments: dict, absent: tuple[str, ...] = ()) -> SamplingRequest:
        """The request a call's arguments make (its `locals()`): every field, but those the caller
        does not take (`absent`, left at their defaults); so a function taking the sampling keywords
        passes them on without naming each. A field neither there nor absent is a TypeError: a
        renamed parameter would otherwise fall back to its default unseen."""
        missing = [f.name for f in fields(cls) if f.name not in arguments and f.name not in absent]
        if missing:
            raise TypeError(f"SamplingRequest.among: the caller takes no {', '.join(missing)}; name it in absent=")
        return cls(**{f.name: arguments[f.name] for f in fields(cls) if f.name in arguments})

    def shaping(self) -> dict:
        """The settings asked for that shape the samples themselves (not left to the card: neither
        None nor "auto"), the verifier (`classifier`) aside: it also picks who checks a set of
        images. What evaluate refuses beside images that are scored as they are."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "classifier" and getattr(self, f.name) != f.default
        }


MAX_SEED = 2**32 - 1  # the largest --seed: what the outputs record and the CLI takes
MAX_COUNT = 10_000_000  # generate's --count per label: far beyond any sane batch job, small enough to catch typos

MIN_GRID = 2  # images per side of a manifold grid: one image would sit at the range's corner, not cover it

# What `evaluate --augment` concludes from its seeds: a sign shared by every seed, or none. Two seeds
# are a small sample; the verdict says only that they agree, the spread (gain_min, gain_max) how far.
VERDICT_HELPS, VERDICT_HURTS, VERDICT_UNCLEAR = "helps", "hurts", "unclear"

DEFAULT_GENERATOR = "cvae"  # the quality-first model: generate and evaluate
DEFAULT_PICTURES = "cvae-2d"  # a 2-D latent that can be drawn: interpolate and encode
DEFAULT_CLASSIFIER = "classifier"  # the shipped verifier for --min-confidence
DEFAULT_JUDGE = "judge"  # the shipped independent grader of evaluate (never the verifier)

KINDS = tuple(k.value for k in Kind)
LIKELIHOODS = tuple(v.value for v in Likelihood)

# Bounds that keep a card from a stranger from asking for absurd allocations.
MAX_LATENT = 512
MAX_CHANNELS = 1024
MAX_CLASSES = 256
MAX_PROCESSES = 256  # train --processes: data-parallel processes on one machine
RESUME_FIX = "start without --resume in a new --out"  # what to do about a damaged run state
MNIST_CLASSES = 10  # the digits: what a model of unnamed labels knows at least, and the shipped judge
UNLABELLED = -1  # the label of an unconditional model's samples (files store 0, or none)
UNLABELLED_DIR = "unlabelled"  # generate's folder for them
ALL_LABELS = "all"  # --digit all, --class all: every label the model trained on
MANIFEST_FILE = "mnistgen.json"  # generate's record (model, sha256, seed, labels, command) beside PNG and IDX outputs
MAX_HIDDEN = 4096

# What the one input reader (sources.py) takes, for `train --data`, `encode` and `evaluate` alike; here,
# pure Python, so train's --data help is written from it without importing the reader (numpy).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")  # a folder's pictures
PICTURE_GLOB = "*." + "|".join(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)  # *.png|jpg|...


class InputForm(NamedTuple):
    short: str  # as a refusal names it (sources.FORMS)
    detail: str  # as train --data's help describes it


INPUT_FORMS = (
    InputForm("an MNIST IDX directory", "a directory of MNIST's IDX files (.gz or not)"),
    InputForm(
        "an ImageFolder DIR/<class>/*.png", f"an ImageFolder DIR/<class>/{PICTURE_GLOB} (class names from the folders)"
    ),
    InputForm("a folder of pictures", "a flat folder of pictures (--model vae only)"),
    InputForm("an .h5/.npz from generate", "an .h5/.npz written by generate (or Keras's mnist.npz)"),
    InputForm("the tutorial's .mat", "the tutorial's train.mat"),
)


def listed(items) -> str:
    """`a, b, or c`: a list as a sentence names it."""
    *rest, last = items
    return f"{', '.join(rest)}, or {last}" if rest else last


# The ranges of train's options: what `mnistgen train` accepts (cli/train.py) and what mnistgen.fit checks
# its keywords against (api.py), decided here once. Both ends whole numbers: the option takes integers.
TRAIN_RANGES = {
    "epochs": SettingRange("--epochs", 1, 10_000),
    "latent": SettingRange("--latent", 1, MAX_LATENT),
    "channels": SettingRange("--channels", 1, MAX_CHANNELS),
    "shift": SettingRange("--shift", 0, 4),
    "kl_warmup": SettingRange("--kl-warmup", 0, 10_000),
    "batch_size": SettingRange("--batch-size", 1, 65_536),
    "lr": SettingRange("--lr", 1e-9, 1.0),
    "beta1": SettingRange("--beta1", 0.0, 0.999),
    "limit": SettingRange("--limit", 1, MAX_SEED),
    "seed": SettingRange("--seed", 0, MAX_SEED),
    "eval_every": SettingRange("--eval-every", 1, 100_000),
}

# evaluate --augment's ranges, checked by the CLI (Typer) and by mnistgen.evaluate alike.
EVALUATE_RANGES = {
    "steps": SettingRange("--steps", 1, 100_000),
    "limit": TRAIN_RANGES["limit"],  # the same first N images as train --limit
}

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


@dataclass
class TrainOptions:
    """How a VAE / CVAE is trained: the single source of train's defaults (the CLI reads them).

    A `Recipe` fills in the hyper-parameters; these are what one run actually used."""

    epochs: Optional[int] = None  # exactly this many passes; None: until the held-out loss stops improving
    batch_size: int = 64  # the tutorial's batch size
    lr: float = 1e-3  # Adam's peak learning rate (the tutorial: 1e-4, constant, 100 epochs)
    beta1: float = 0.5  # Adam's beta1, as the tutorial
    lr_decay: bool = True  # cosine decay to lr * schedule.LR_FINAL_RATIO over the run (max_epochs when stopping early)
    kl_warmup: int = 0  # epochs over which the KL weight rises from 0 to 1 (keeps a large latent in use early)
    eval_every: int = 1  # test-set evaluation every N epochs (and always after the last)
    seed: int = 0  # drives init, shuffling, noise, the held-out split: the same seed repeats the run
    command: str = ""  # the command line, recorded in the model card
    class_names: list = field(default_factory=list)  # names of the labels (Fashion-MNIST: "T-shirt/top", ...)
    extra: dict = field(default_factory=dict)  # data selection etc., recorded in the card
    max_epochs: int = 200  # early stopping's bound (epochs=None)
    patience: int = 10  # epochs without a better held-out loss before early stopping ends the run
    shift: int = 0  # random translation of each training image by up to this many pixels, per epoch
    companion: bool = True  # also train a classifier on the same data and calibrate sampling with it
    recipe: str = ""  # the recipe these options came from, for the card

    @property
    def horizon(self) -> int:
        """Epochs the learning-rate schedule spans: the fixed count, else early stopping's bound."""
        return self.epochs or self.max_epochs


@dataclass(frozen=True)
class Recipe:
    """A named way to train a generator: architecture and optimisation, defined once.

    `train --recipe NAME` takes one whole; options given on the command line override its fields.
    Without --recipe, `recipe_for(images)` picks by the size of the user's data."""

    name: str
    about: str
    kind: str = "cvae"
    latent: int = 16
    channels: int = 32
    likelihood: str = "bernoulli"
    kl_warmup: int = 2
    epochs: Optional[int] = None  # None: early stopping on the held-out loss
    max_epochs: int = 200
    patience: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    beta1: float = 0.5
    lr_decay: bool = True
    shift: int = 0

    def model_config(self, num_classes: int, **overrides) -> ModelConfig:
        base = {"kind": self.kind, "latent": self.latent, "channels": self.channels, "likelihood": self.likelihood}
        return ModelConfig(num_classes=num_classes, **{**base, **overrides})

    def train_options(self, **overrides) -> TrainOptions:
        """Every field the recipe shares with TrainOptions, then the overrides (a new shared field comes along)."""
        shared = {f.name for f in fields(TrainOptions)}
        base = {f.name: getattr(self, f.name) for f in fields(self) if f.name in shared}
        return TrainOptions(recipe=self.name, **{**base, **overrides})


RECIPES = {
    "cvae-2d": Recipe(
        "cvae-2d",
        "the tutorial's: 2-d latent, tanh output, 12 epochs (weights/cvae-2d.json)",
        latent=2,
        likelihood="gaussian",
        kl_warmup=0,
        epochs=12,
    ),
    "cvae": Recipe(
        "cvae",
        "the shipped default's: 16-d latent, Bernoulli output, KL warm-up 2, 30 epochs (weights/cvae.json)",
        epochs=30,
    ),
    "vae-2d": Recipe(
        "vae-2d",
        "the tutorial's unconditional VAE: 2-d latent, 12 epochs",
        kind="vae",
        latent=2,
        likelihood="gaussian",
        kl_warmup=0,
        epochs=12,
    ),
}
# Small data sets: chosen with `evaluate --augment` (README, "Augment your own small data set").
SMALL_DATA_RECIPES = (  # (at most this many training images, recipe)
    (
        300,
        Recipe(
            "small",
            "<= 300 images: 8-d latent, KL warm-up 10, shifts of 1 px, early stopping",
            latent=8,
            kl_warmup=10,
            patience=20,
            max_epochs=400,
            shift=1,
        ),
    ),
    (
        3_000,
        Recipe(
            "medium",
            "<= 3,000 images: 16-d latent, KL warm-up 10, shifts of 1 px, early stopping (at most 90 epochs)",
            kl_warmup=10,
            patience=10,
            max_epochs=90,
            shift=1,
        ),
    ),
    (
        30_000,
        Recipe("large", "<= 30,000 images: 16-d latent, KL warm-up 5, early stopping", kl_warmup=5, max_epochs=60),
    ),
)
LARGE_DATA_RECIPE = Recipe("full", "> 30,000 images: the shipped default's, early stopping", max_epochs=30, patience=3)
ALL_RECIPES = (*RECIPES.values(), *(recipe for _, recipe in SMALL_DATA_RECIPES), LARGE_DATA_RECIPE)  # train's help


def recipe_for(images: int, kind: str = "cvae") -> Recipe:
    """The default recipe for `images` training images of a `kind` model."""
    chosen = next((recipe for bound, recipe in SMALL_DATA_RECIPES if images <= bound), LARGE_DATA_RECIPE)
    return replace(chosen, kind=kind)


def train_kind(model: Optional[str], recipe: Optional[str]) -> str:
    """What `train` makes: `model` when given, else the kind the named `recipe` trains (vae-2d: a vae),
    else a cvae. A `model` that contradicts its recipe is refused (a recipe name left unknown here is
    refused by `named_recipe`)."""
    named = RECIPES[recipe].kind if recipe in RECIPES else None
    if model is None or named is None or model == named:
        return model or named or TrainKind.cvae.value
    fitting = [name for name, chosen in RECIPES.items() if chosen.kind == model]
    fix = (
        f"drop --model, or choose a {model} recipe ({', '.join(fitting)})"
        if fitting
        else f"the {model} takes no --recipe; drop one of them"
    )
    raise MnistgenError(f"--recipe {recipe} trains a {named}, not a {model}: {fix}")


def run_name(kind: str, latent: Optional[int], recipe: Optional[str]) -> str:
    """A run directory's default name: KIND-<latent>d when the latent is known before the data is read
    (given, or a named recipe's), else KIND."""
    latent = latent or (RECIPES[recipe].latent if recipe in RECIPES and kind != TrainKind.classifier.value else None)
    return f"{kind}-{latent}d" if latent else kind


def named_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise MnistgenError(f"--recipe {name!r} is unknown: use one of {', '.join(RECIPES)}, or leave it out")
    return RECIPES[name]


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the tutorial's conv VAE / CVAE."""

    kind: str = "cvae"  # "vae" (unconditional) or "cvae" (a one-hot label conditions both halves)
    latent: int = 2  # size of z; 2 lets the latent space be drawn, as in the tutorial
    channels: int = 32  # width of the first conv; the second conv has twice as many
    num_classes: int = 10  # size of the one-hot label (CVAE only; MNIST has 10 digits)
    image_size: int = IMAGE_SIZE  # side of the square grayscale input; fixed by the architecture
    # "gaussian": tanh output, summed squared error (the tutorial); "bernoulli": sigmoid, cross-entropy on [0, 1]
    likelihood: str = "gaussian"

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


class ClassifierArch(str, Enum):
    """The classifier's architecture: the verifier's LeNet, or the independent judge's."""

    lenet = "lenet"
    judge = "judge"


class Augment(str, Enum):
    """How the classifier's training images are distorted: the arch's own, whole-batch shifts, or per-image affine."""

    auto = "auto"
    shift = "shift"
    affine = "affine"


CLASSIFIER_ARCHS = tuple(a.value for a in ClassifierArch)


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
