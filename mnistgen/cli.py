"""The `mnistgen` command line (Typer only): parse, validate, call the library, report.

Arguments are validated before Paddle is imported, so mistakes are reported at once and
`mnistgen --help` stays fast. `MnistgenError` becomes `Error: ...` on stderr with exit 1;
usage mistakes are Typer/Click usage errors with exit 2; Ctrl-C exits 130. Progress goes to
stderr, results (one JSON line) to stdout.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shlex
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from mnistgen import __version__
from mnistgen.errors import MnistgenError
from mnistgen.runtime import Device

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
MAX_SEED = 2**32 - 1
MAX_COUNT = 10_000_000  # per digit; far beyond any sane batch job, small enough to catch typos

app = typer.Typer(
    name="mnistgen",
    help="Train a VAE / conditional VAE on MNIST with PaddlePaddle and generate synthetic handwritten digits.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain Click messages: one-line usage errors, no boxes
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Likelihood(str, Enum):
    gaussian = "gaussian"
    bernoulli = "bernoulli"


class ModelKind(str, Enum):
    vae = "vae"
    cvae = "cvae"
    classifier = "classifier"


class ClassifierArch(str, Enum):
    lenet = "lenet"
    judge = "judge"


class Augment(str, Enum):
    auto = "auto"
    shift = "shift"
    affine = "affine"


DeviceOption = Annotated[
    Device, typer.Option("--device", help="Where to run: auto picks a CUDA GPU when Paddle has one, else the CPU.")
]
TruncationOption = Annotated[
    Optional[float],
    typer.Option(
        "--truncation",
        min=0.0,
        max=100.0,
        help="Redraw latents whose standard-normal draw is longer than R (fewer off-label outliers, less variety); 0: keep all [default: the model card's recommendation, else 0].",
    ),
]
MinConfidenceOption = Annotated[
    Optional[float],
    typer.Option(
        "--min-confidence",
        min=0.0,
        max=1.0,
        help="Keep only samples the classifier assigns to their digit with at least this probability (e.g. 0.9); 0 keeps all [default: the model card's recommendation, else 0].",
    ),
]
SharpenOption = Annotated[
    Optional[float],
    typer.Option(
        "--sharpen",
        min=1.0,
        max=10.0,
        help="Push pixels towards black or white: the decoder's last layer scaled by K (1: its blurry mean image) [default: the model card's recommendation, else 1].",
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or log lines on stderr.")]
ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Weights to use: a name (cvae, cvae-2d, vae-2d, or one in $MNISTGEN_WEIGHTS) or a path to a .safetensors file or run directory.",
    ),
]
DEFAULT_GENERATOR = "cvae"  # the quality-first model: generate and evaluate
DEFAULT_PICTURES = "cvae-2d"  # a 2-D latent that can be drawn: interpolate and encode


def _stderr(message: str) -> None:
    typer.echo(message, err=True)


@contextlib.contextmanager
def _user_errors(interrupted_note: str = "stopped; every file already written is complete"):
    """Turn library errors into one line on stderr and the documented exit codes."""
    try:
        yield
    except MnistgenError as exc:
        _stderr(f"Error: {exc}")
        raise typer.Exit(EXIT_ERROR) from None
    except KeyboardInterrupt:
        _stderr(f"Interrupted: {interrupted_note}.")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except OSError as exc:  # disk full, file-size limit, permissions changed under us
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        reason = exc.strerror or " ".join(str(exc).split())  # one line, whatever the library put in it
        _stderr(
            f"Error: cannot write{where}: {reason}; free space or choose another --out (partial files were removed)"
        )
        raise typer.Exit(EXIT_ERROR) from None


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"mnistgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Train a VAE / conditional VAE on MNIST with PaddlePaddle and generate synthetic handwritten digits.

    Example: mnistgen generate --digit 7 --count 1000 --out synth/
    """


# -- argument parsing (pure Python: runs before Paddle is imported) ----------------------------


def parse_int_list(text: str, option: str) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p.isdigit() for p in parts):
        raise typer.BadParameter(
            f"{text!r} is not a comma-separated list of non-negative integers (e.g. 5,25)", param_hint=option
        )
    return [int(p) for p in parts]


def parse_digits(text: Optional[str], num_classes: int = 10) -> Optional[list[int]]:
    """`7`, `0,3,7` or `all` -> sorted unique digits; None when not given."""
    if text is None:
        return None
    if text.strip().lower() == "all":
        return list(range(num_classes))
    digits = parse_int_list(text, "--digit")
    bad = [d for d in digits if d >= num_classes]
    if bad:
        raise typer.BadParameter(
            f"{bad[0]} is not a digit: use 0-{num_classes - 1}, a list like 0,3,7, or all", param_hint="--digit"
        )
    return sorted(set(digits))


def _judge_weights(weights, min_confidence: Optional[float], classifier: str):
    """The classifier weights a filter needs, or None; when the filter is the card's default, a
    missing classifier is reported with the way to do without it."""
    from mnistgen import checkpoint
    from mnistgen.sample import recommended

    if not recommended(weights, "min_confidence", min_confidence, 0):
        return None
    if min_confidence is None:
        try:
            checkpoint.resolve(classifier)
        except MnistgenError as exc:
            raise MnistgenError(
                f"model {weights.name} checks its samples with a classifier by default, but {exc}; "
                "pass --classifier NAME|PATH, or --min-confidence 0 to skip the check"
            ) from None
    return _check_model(classifier, "--classifier")


def _check_model(spec: str, option: str = "--model"):
    """Resolve and check weights: an unknown name is a usage error; a damaged file an Error."""
    from mnistgen import checkpoint

    try:
        checkpoint.resolve(spec)
    except MnistgenError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
    weights = checkpoint.inspect(spec)
    if option == "--model" and weights.is_classifier:
        raise MnistgenError(f"{spec} is the classifier, not a generator: pass a VAE or CVAE to --model (e.g. cvae-2d)")
    if option == "--classifier" and not weights.is_classifier:
        raise MnistgenError(
            f"{spec} is a {weights.config.kind} generator, not a classifier: pass --classifier classifier"
        )
    return weights


# -- progress -----------------------------------------------------------------------------------


def _progress(quiet: bool):
    """A rich progress bar on stderr, or a silent stand-in with the same interface."""
    if quiet:
        return _NullProgress()
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )


class _NullProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *args, **kwargs):
        return 0

    def update(self, *args, **kwargs):
        pass

    def print(self, *args, **kwargs):
        pass

    @property
    def console(self):
        return self


def command_line(ctx: typer.Context) -> str:
    """The command as an explicit, reproducible line: every option with its parsed value."""
    words = ["mnistgen", ctx.info_name or ""]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or not getattr(param, "opts", None):
            continue
        if isinstance(value, bool):
            flag = param.opts[0] if value else (param.secondary_opts or [None])[0]
            words += [flag] if flag else []
        else:
            words += [
                param.opts[-1] if param.opts[-1].startswith("--") else param.opts[0],
                str(getattr(value, "value", value)),
            ]
    return shlex.join(words)


def _emit(summary: dict) -> None:
    """The one result line on stdout."""
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()


# -- train --------------------------------------------------------------------------------------


class _TrainProgress:
    """Bridges the library's TrainCallback to a rich bar."""

    def __init__(self, progress):
        self.progress, self.task, self.epochs = progress, None, 0

    def on_start(self, epochs, first_epoch, steps_per_epoch):
        self.epochs = epochs
        self.task = self.progress.add_task(f"epoch {first_epoch + 1}/{epochs}", total=steps_per_epoch, info="")

    def on_step(self, epoch, step, loss, rec, kl, images_per_s):
        info = f"loss {loss:8.2f}  KL {kl:6.2f}  {images_per_s:6.0f} img/s"
        self.progress.update(self.task, completed=step + 1, description=f"epoch {epoch + 1}/{self.epochs}", info=info)

    def on_epoch(self, metrics):
        test = (
            f"test loss {metrics['test_loss']:.2f} (rec {metrics['test_rec']:.2f}, KL {metrics['test_kl']:.2f})"
            if "test_loss" in metrics
            else "no test evaluation this epoch"
        )
        self.progress.console.print(
            f"epoch {metrics['epoch']}: train loss {metrics['train_loss']:.2f}, {test}, {metrics['seconds']:.0f} s"
        )


@app.command()
def train(
    ctx: typer.Context,
    model: Annotated[
        ModelKind,
        typer.Option(
            "--model",
            "-m",
            help="What to train: vae (unconditional), cvae (label-conditioned), or the classifier that evaluate and --min-confidence use.",
        ),
    ] = ModelKind.cvae,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            "-o",
            help="Run directory for checkpoints, metrics and sample grids [default: runs/<model>-<latent>d].",
        ),
    ] = None,
    data: Annotated[
        Optional[Path],
        typer.Option(
            "--data",
            exists=True,
            help="MNIST: a directory of the four IDX files (.gz or not) or the tutorial's train.mat [default: the cache].",
        ),
    ] = None,
    download: Annotated[
        bool,
        typer.Option(
            "--download",
            help="Download MNIST into the cache ($MNISTGEN_DATA or ~/.cache/mnistgen) first, checking md5s.",
        ),
    ] = False,
    epochs: Annotated[int, typer.Option("--epochs", min=1, max=10_000, help="Passes over the training set.")] = 20,
    latent: Annotated[int, typer.Option("--latent", min=1, max=512, help="Latent size (2 can be drawn).")] = 2,
    channels: Annotated[
        int, typer.Option("--channels", min=1, max=1024, help="Width of the first conv (the second has twice as many).")
    ] = 32,
    likelihood: Annotated[
        Likelihood,
        typer.Option(
            "--likelihood",
            help="gaussian: tanh output, squared error (the tutorial); bernoulli: sigmoid output, cross-entropy on [0, 1] pixels.",
        ),
    ] = Likelihood.gaussian,
    kl_warmup: Annotated[
        int, typer.Option("--kl-warmup", min=0, max=10_000, help="Epochs over which the KL weight rises from 0 to 1.")
    ] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=65_536, help="Images per step.")] = 64,
    lr: Annotated[
        float, typer.Option("--lr", min=1e-9, max=1.0, help="Adam's peak learning rate (cosine decay to 5% of it).")
    ] = 1e-3,
    lr_decay: Annotated[
        bool, typer.Option("--lr-decay/--no-lr-decay", help="Cosine-decay the learning rate over the run.")
    ] = True,
    beta1: Annotated[
        float, typer.Option("--beta1", min=0.0, max=0.999, help="Adam's beta1 (the tutorial uses 0.5).")
    ] = 0.5,
    limit: Annotated[
        Optional[int], typer.Option("--limit", min=1, help="Train on the first N training images only.")
    ] = None,
    indices: Annotated[
        Optional[str],
        typer.Option(
            "--indices",
            help="Train on these training images only, e.g. 5,25 (the tutorial's one- and two-image experiments).",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed for initialisation, shuffling and noise.")
    ] = 0,
    eval_every: Annotated[
        int,
        typer.Option(
            "--eval-every", min=1, max=100_000, help="Evaluate on the test set every N epochs (and after the last)."
        ),
    ] = 1,
    arch: Annotated[
        ClassifierArch,
        typer.Option(
            "--arch",
            help="With --model classifier: lenet (the verifier of --min-confidence) or judge (evaluate's grader).",
        ),
    ] = ClassifierArch.lenet,
    augment: Annotated[
        Augment,
        typer.Option(
            "--augment",
            help="With --model classifier: shift (whole batch), affine (per image), auto: the arch's own.",
        ),
    ] = Augment.auto,
    class_names: Annotated[
        Optional[str],
        typer.Option(
            "--class-names",
            help='Names of the labels, in order, for another 28x28 IDX dataset (e.g. Fashion-MNIST: "T-shirt/top,Trouser,...") [default: 0, 1, ...].',
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its last finished epoch.")
    ] = False,
    distributed: Annotated[
        bool,
        typer.Option(
            "--distributed",
            help="Require a data-parallel launch (python -m paddle.distributed.launch ... mnistgen train); launched runs are data-parallel anyway.",
        ),
    ] = False,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
) -> None:
    """Train a VAE or CVAE on MNIST; writes checkpoints, metrics.jsonl and sample grids to --out.

    Example: mnistgen train --model cvae --epochs 20 --data ../shared/data/mnist --out runs/cvae-2d
    """
    from mnistgen.config import ModelConfig

    chosen = parse_int_list(indices, "--indices") if indices is not None else None
    out = out or Path("runs") / f"{model.value}-{latent}d"
    from mnistgen.runtime import launched_world

    rank, world = launched_world()
    if distributed and world < 2:
        raise typer.BadParameter(
            'start data-parallel training with: python -m paddle.distributed.launch --nproc_per_node N "$(which mnistgen)" train ...',
            param_hint="--distributed",
        )
    if (arch is not ClassifierArch.lenet or augment is not Augment.auto) and model is not ModelKind.classifier:
        raise typer.BadParameter(
            "--arch and --augment shape a classifier's training: add --model classifier", param_hint="--arch/--augment"
        )
    if world > 1 and model is ModelKind.classifier:
        raise typer.BadParameter(
            "the classifier trains on one process: drop the distributed launch", param_hint="--model"
        )
    quiet = quiet or rank != 0  # one progress bar, from rank 0
    names = [n.strip() for n in class_names.split(",")] if class_names else []
    with _user_errors(f"kept the last finished epoch in {out}; continue with --resume"):
        from mnistgen import data as data_lib
        from mnistgen import train as train_lib

        if rank == 0:
            train_lib.check_run_dir(out, resume)
        dataset = data_lib.load(data, download=download and rank == 0)
        num_classes = max(10, int(dataset.train.labels.max()) + 1)  # MNIST's 10, or up to 256 for other IDX datasets
        if names and len(names) != num_classes:
            raise MnistgenError(
                f"--class-names has {len(names)} names but the data has {num_classes} classes: give one name per class"
            )
        config = ModelConfig(
            kind=model.value if model is not ModelKind.classifier else "cvae",
            latent=latent,
            channels=channels,
            num_classes=num_classes,
            likelihood=likelihood.value,
        )
        extra = {}
        if chosen is not None:
            bad = [i for i in chosen if i >= len(dataset.train)]
            if bad:
                raise MnistgenError(
                    f"--indices {bad[0]} is out of range: the training set has {len(dataset.train)} images (0-{len(dataset.train) - 1})"
                )
            dataset.train, extra["indices"] = dataset.train.subset(chosen), chosen
        elif limit is not None:
            dataset.train, extra["limit"] = dataset.train.subset(slice(0, limit)), limit
        options = train_lib.TrainOptions(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            beta1=beta1,
            lr_decay=lr_decay,
            kl_warmup=kl_warmup,
            eval_every=eval_every,
            seed=seed,
            command=command_line(ctx),
            extra=extra,
            class_names=names,
        )
        from mnistgen.runtime import init_distributed, select_device

        device_name = select_device(device)
        init_distributed()
        started = time.perf_counter()
        if model is ModelKind.classifier:
            options = clf_options(epochs, batch_size, lr, seed, eval_every, augment.value, command_line(ctx))
            metrics = _train_classifier(dataset, out, options, arch.value, channels, quiet)
            _emit(
                {
                    **metrics,
                    "run": str(out),
                    "model": str(out / "model.safetensors"),
                    "seconds_total": round(time.perf_counter() - started, 1),
                }
            )
            return
        with _progress(quiet) as progress:
            if not quiet:
                ranks = f" on {world} processes" if world > 1 else ""
                _stderr(
                    f"training {config.kind} (latent {latent}) on {len(dataset.train)} images, {device_name}{ranks}, into {out}"
                )
            metrics = train_lib.train(
                config, dataset, options, out, resume=resume, callback=_TrainProgress(progress), rank=rank, world=world
            )
        if rank == 0:
            _emit(
                {
                    **metrics,
                    "run": str(out),
                    "model": str(out / "model.safetensors"),
                    "seconds_total": round(time.perf_counter() - started, 1),
                    "processes": world,
                }
            )


def clf_options(epochs: int, batch_size: int, lr: float, seed: int, eval_every: int, augment: str, command: str):
    from mnistgen import classifier as clf

    return clf.ClassifierOptions(
        epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, eval_every=eval_every, augment=augment, command=command
    )


def _train_classifier(dataset, out: Path, options, arch: str, channels: int, quiet: bool) -> dict:
    from mnistgen import classifier as clf
    from mnistgen.config import ClassifierConfig

    cfg = ClassifierConfig(arch=arch, channels=channels)

    def report(metrics: dict) -> None:
        if not quiet:
            test = (
                f"test accuracy {metrics['test_accuracy']:.4f}" if "test_accuracy" in metrics else "no test evaluation"
            )
            _stderr(f"epoch {metrics['epoch']}: loss {metrics['train_loss']:.4f}, {test}, {metrics['seconds']:.0f} s")

    net, history = clf.train(dataset.train, dataset.test, options, cfg, on_epoch=report)
    clf.save(net, history, options, out, dataset.source, len(dataset.train))
    return history[-1]


# -- generate -----------------------------------------------------------------------------------


def parse_shard(text: Optional[str]):
    """`i/n` (0-based) -> Shard."""
    from mnistgen.sample import Shard

    if text is None:
        return Shard(0, 1)
    index, slash, count = text.partition("/")
    if not slash or not index.strip().isdigit() or not count.strip().isdigit():
        raise typer.BadParameter(
            f"{text!r} is not i/n: job i of n, counting from 0 (e.g. 0/4 ... 3/4)", param_hint="--shard"
        )
    index, count = int(index), int(count)
    if count < 1 or index >= count:
        raise typer.BadParameter(
            f"{text!r}: need 0 <= i < n, counting from 0 (e.g. 0/{max(count, 2)} ... {max(count, 2) - 1}/{max(count, 2)})",
            param_hint="--shard",
        )
    return Shard(index, count)


# The choices below mirror generate.Format, sample.PRIORS and predictor.PRECISIONS; they are spelled out here because
# importing those modules would import numpy, and `mnistgen --help` must not.
class PriorKind(str, Enum):
    auto = "auto"
    standard = "standard"
    fitted = "fitted"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


class OutputFormat(str, Enum):
    png = "png"
    hdf5 = "hdf5"
    npz = "npz"
    idx = "idx"
    grid = "grid"


@app.command()
def generate(
    ctx: typer.Context,
    digit: Annotated[
        Optional[str],
        typer.Option(
            "--digit",
            "-d",
            help="Digit(s) to generate: 7, a list 0,3,7, or all [default: all; none for an unconditional model].",
        ),
    ] = None,
    class_: Annotated[
        Optional[str],
        typer.Option(
            "--class",
            help="The general form of --digit for other datasets: class names from the model card or indices, e.g. Sneaker,0.",
        ),
    ] = None,
    count: Annotated[int, typer.Option("--count", "-n", min=1, max=MAX_COUNT, help="Images per digit.")] = 100,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write: a directory for png/idx, a file for hdf5/npz/grid.")
    ] = Path("synth"),
    fmt: Annotated[
        Optional[OutputFormat],
        typer.Option(
            "--format",
            "-f",
            help="png: OUT/<digit>/<index>.png + metadata.jsonl; hdf5; npz; idx (MNIST file pair); grid (one preview PNG, a row per digit) [default: from --out's suffix (.h5, .npz, .png), else png].",
        ),
    ] = None,
    model: ModelOption = DEFAULT_GENERATOR,
    seed: Annotated[
        Optional[int],
        typer.Option(
            "--seed",
            min=0,
            max=MAX_SEED,
            help="Seed: the same seed gives byte-identical images whatever the format, batch or shard [default: random, printed in the summary].",
        ),
    ] = None,
    temperature: Annotated[
        Optional[float],
        typer.Option(
            "--temperature",
            "-t",
            min=0.0,
            max=10.0,
            help="Scale of the prior's standard deviation (below 1: cleaner, less varied digits) [default: the model card's recommendation, else 1].",
        ),
    ] = None,
    sharpen: SharpenOption = None,
    truncation: TruncationOption = None,
    prior: Annotated[
        PriorKind,
        typer.Option(
            "--prior",
            help="standard: N(0, I); fitted: the Gaussian fitted to the training data's latents per digit (ex-post density estimation); auto: what the model card recommends.",
        ),
    ] = "auto",
    shard: Annotated[
        Optional[str],
        typer.Option(
            "--shard", help="Write only part i of n (counting from 0), e.g. 0/4; n shards together equal one run."
        ),
    ] = None,
    scale: Annotated[
        int, typer.Option("--scale", min=1, max=32, help="Enlarge a grid picture by this factor (nearest neighbour).")
    ] = 1,
    min_confidence: MinConfidenceOption = None,
    classifier: Annotated[
        str, typer.Option("--classifier", help="Classifier weights for --min-confidence (name or path).")
    ] = "classifier",
    threads: Annotated[
        Optional[int],
        typer.Option(
            "--threads",
            min=1,
            max=1024,
            help="CPU threads for decoding and writing [default: the CPUs this job may use: affinity, cgroup quota, SLURM_CPUS_PER_TASK, OMP_NUM_THREADS].",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace earlier mnistgen output in --out (digit folders, metadata, the target file)."
        ),
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Finish an interrupted job: write only the files that are missing.")
    ] = False,
    device: DeviceOption = Device.auto,
    precision: Annotated[
        Precision,
        typer.Option(
            "--precision",
            help="CPU decoder arithmetic: auto picks bf16 on CPUs with fast bfloat16 (AMX; about 2x faster, pixels within a few levels), else fp32.",
        ),
    ] = Precision.auto,
    quiet: QuietOption = False,
) -> None:
    """Generate synthetic digits: COUNT per digit, as PNGs, HDF5, NPZ, MNIST IDX or a preview grid.

    Example: mnistgen generate --digit 7 --count 1000 --out synth/
    """
    digits = parse_digits(digit)
    if digit is not None and class_ is not None:
        raise typer.BadParameter("give --digit or --class, not both", param_hint="--digit/--class")
    chosen_shard = parse_shard(shard)
    if force and resume:
        raise typer.BadParameter("--force replaces, --resume keeps: choose one", param_hint="--force/--resume")
    seed = secrets.randbelow(MAX_SEED + 1) if seed is None else seed
    if threads is not None:
        import os

        from mnistgen.runtime import THREADS_ENV

        os.environ[THREADS_ENV] = str(threads)
    with _user_errors("every file already written is complete; finish with --resume"):
        from mnistgen import generate as gen

        weights = _check_model(model)
        if class_ is not None:
            digits = gen.resolve_classes(weights, class_)
        from mnistgen.sample import default_temperature, make_prior

        judge_weights = _judge_weights(weights, min_confidence, classifier)
        chosen_prior = make_prior(weights, PriorKind(prior).value, truncation)
        temperature = default_temperature(weights, temperature)
        job = gen.plan_job(
            gen.Job(
                weights=weights,
                labels=gen.labels_for(weights, digits),
                count=count,
                out=out,
                fmt=gen.infer_format(out, fmt),
                seed=seed,
                temperature=temperature,
                shard=chosen_shard,
                force=force,
                resume=resume,
                scale=scale,
                command=command_line(ctx),
                prior=chosen_prior,
            )
        )
        from mnistgen.runtime import select_device
        from mnistgen.sample import make_decoder

        device_name = select_device(device)
        decoder = make_decoder(weights, device_name, precision=precision.value, sharpen=sharpen)
        from mnistgen import classifier as clf

        job.confidence = clf.confidence_filter(weights, min_confidence, judge_weights, device_name, precision.value)

        def info(rate: float) -> str:
            kept = f"  {1 - job.confidence.acceptance:5.1%} rejected" if job.confidence else ""
            return f"{rate:6.0f} img/s{kept}"

        with _progress(quiet) as progress:
            task = progress.add_task("generating", total=job.size, info="")
            summary = gen.run_job(
                job, decoder, on_progress=lambda done, rate: progress.update(task, completed=done, info=info(rate))
            )
        _emit(summary)


# -- interpolate --------------------------------------------------------------------------------


class WalkOutput(str, Enum):
    gif = "gif"
    png = "png"
    frames = "frames"


class Method(str, Enum):
    lerp = "lerp"
    slerp = "slerp"


DEFAULT_WALK_OUT = {
    WalkOutput.gif: Path("interpolate.gif"),
    WalkOutput.png: Path("interpolate.png"),
    WalkOutput.frames: Path("interpolate_frames"),
}


def parse_points(text: str) -> list[list[float]]:
    """`x1,y1;x2,y2;...` -> list of coordinate lists (at least two points)."""
    try:
        points = [[float(v) for v in part.split(",")] for part in text.split(";") if part.strip()]
    except ValueError:
        points = []
    if len(points) < 2 or len({len(p) for p in points}) != 1:
        raise typer.BadParameter(
            f'{text!r} is not a list of at least two points like "x1,y1;x2,y2" with the same number of coordinates each',
            param_hint="--points",
        )
    return points


def parse_floats(text: str, count: int, option: str, example: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count:
        raise typer.BadParameter(f"{text!r}: give {count} comma-separated numbers, e.g. {example}", param_hint=option)
    return values


@app.command()
def interpolate(
    to: Annotated[
        WalkOutput,
        typer.Option("--to", help="gif: an animation; png: a strip, one frame per column; frames: a folder of PNGs."),
    ] = WalkOutput.gif,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            "-o",
            help="Output file or folder [default: interpolate.gif / .png / interpolate_frames/, or grid.png with --grid].",
        ),
    ] = None,
    digits: Annotated[
        Optional[str],
        typer.Option(
            "--digits",
            help="A path through digits, e.g. 3,8 (CVAE: the label morphs at a fixed z; VAE: class centroids) [default: 0,1,...,9].",
        ),
    ] = None,
    images: Annotated[
        Optional[str],
        typer.Option("--images", help="Walk between the encoder means of these images, e.g. a.png,b.png."),
    ] = None,
    points: Annotated[
        Optional[str],
        typer.Option("--points", help='Walk through latent points, e.g. "-2,0;2,0" (several make a path).'),
    ] = None,
    digit: Annotated[
        Optional[int],
        typer.Option(
            "--digit", "-d", min=0, max=255, help="CVAE label for --points, --images without labels, or --grid."
        ),
    ] = None,
    labels: Annotated[Optional[str], typer.Option("--labels", help="CVAE labels of the --images, e.g. 3,8.")] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, max=1000, help="Frames per segment of the path.")] = 16,
    method: Annotated[
        Method,
        typer.Option(
            "--method", help="lerp: straight lines; slerp: great circles (stays at the prior's typical radius)."
        ),
    ] = Method.lerp,
    fps: Annotated[float, typer.Option("--fps", min=0.1, max=100.0, help="GIF frames per second.")] = 12.0,
    scale: Annotated[
        int,
        typer.Option("--scale", min=1, max=32, help="Enlarge each 28-pixel image by this factor (nearest neighbour)."),
    ] = 4,
    loop: Annotated[
        bool, typer.Option("--loop/--no-loop", help="Return to the start, so the GIF cycles smoothly.")
    ] = True,
    seed: Annotated[
        Optional[int],
        typer.Option(
            "--seed",
            min=0,
            max=MAX_SEED,
            help="CVAE label morphs: draw the fixed z from the prior with this seed [default: z = 0].",
        ),
    ] = None,
    grid: Annotated[
        Optional[int],
        typer.Option(
            "--grid",
            min=2,
            max=100,
            help="Instead of a path: decode an N x N grid over two latent dimensions into one PNG (the tutorial's manifold).",
        ),
    ] = None,
    dims: Annotated[
        str, typer.Option("--dims", help="The two latent dimensions the grid sweeps (others stay 0).")
    ] = "0,1",
    bounds: Annotated[
        Optional[str],
        typer.Option(
            "--bounds",
            help="Grid range x1,x2,y1,y2 [default: the range of the encoder means on the training data, from the model card].",
        ),
    ] = None,
    sigma: Annotated[
        Optional[float],
        typer.Option(
            "--sigma",
            min=0.0,
            max=1e6,
            help="Grid range: +-K standard deviations of the prior instead of the data range.",
        ),
    ] = None,
    model: ModelOption = DEFAULT_PICTURES,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
) -> None:
    """Decode a walk through latent space to a GIF, a PNG strip or frames; or, with --grid, the 2-D manifold.

    Example: mnistgen interpolate --to gif --out walk.gif --digits 3,8
    """
    if sum(x is not None for x in (digits, images, points)) > 1:
        raise typer.BadParameter("give one of --digits, --images, --points", param_hint="--digits/--images/--points")
    if grid is not None and (digits or images or points):
        raise typer.BadParameter(
            "--grid draws a grid, not a path: drop --digits/--images/--points", param_hint="--grid"
        )
    if bounds is not None and sigma is not None:
        raise typer.BadParameter("give --bounds or --sigma, not both", param_hint="--bounds/--sigma")
    chosen_digits = parse_int_list(digits, "--digits") if digits is not None else None
    chosen_points = parse_points(points) if points is not None else None
    chosen_labels = parse_int_list(labels, "--labels") if labels is not None else None
    grid_dims = tuple(parse_int_list(dims, "--dims"))
    if len(grid_dims) != 2:
        raise typer.BadParameter(f"{dims!r}: give two latent dimensions, e.g. 0,1", param_hint="--dims")
    grid_bounds = parse_floats(bounds, 4, "--bounds", "-3,3,-3,3") if bounds is not None else None
    image_paths = [Path(p.strip()) for p in images.split(",")] if images is not None else None
    out = out or (Path("grid.png") if grid is not None else DEFAULT_WALK_OUT[to])
    with _user_errors("nothing was left half-written"):
        from mnistgen import explore, export

        weights = _check_model(model)
        if image_paths is not None and len(image_paths) < 2:
            raise MnistgenError("--images needs at least two images to walk between, e.g. a.png,b.png")
        if chosen_digits is not None and len(chosen_digits) < 2:
            raise MnistgenError("--digits needs at least two digits to walk between, e.g. 3,8")
        from mnistgen.runtime import select_device
        from mnistgen.sample import decode_all, load_model, make_decoder

        device_name = select_device(device)
        decoder = make_decoder(weights, device_name)
        if grid is not None:
            z, onehot, spec = explore.grid(weights, grid, grid_dims, digit, grid_bounds, sigma)
            if weights.config.latent > 2 and not quiet:
                _stderr(
                    f"note: the latent has {weights.config.latent} dimensions; the grid sweeps {grid_dims[0]} and {grid_dims[1]}, the others are 0"
                )
            tiles = decode_all(decoder, z, onehot).reshape(grid, grid, 28, 28)
            export.write_png(out, export.upscale(export.tile(tiles), scale))
            _emit(
                {
                    "grid": grid,
                    "out": str(out),
                    "x": list(spec.x),
                    "y": list(spec.y),
                    "dims": list(grid_dims),
                    "model": weights.name,
                }
            )
            return
        kwargs = {"digits": chosen_digits, "points": chosen_points, "label": digit, "seed": seed}
        if image_paths is not None:
            kwargs = explore.image_anchors(weights, load_model(weights), image_paths, chosen_labels, digit)
        elif chosen_points is None and chosen_digits is None:
            kwargs["digits"] = list(range(weights.config.num_classes))
        z, onehot = explore.walk(weights, steps, method.value, loop, **kwargs)
        frames = export.upscale(decode_all(decoder, z, onehot), scale)
        export.write_walk(out, frames, to.value, fps, loop)
        _emit({"frames": len(frames), "out": str(out), "to": to.value, "model": weights.name})


# -- encode -------------------------------------------------------------------------------------

RECON_COLUMNS = 16  # images shown in a --reconstruct figure


@app.command()
def encode(
    sources_: Annotated[
        list[Path],
        typer.Argument(
            metavar="SOURCES",
            help="PNG files, folders of them (ImageFolder layout gives labels), an IDX images file, an HDF5 file from generate, or the tutorial's .mat.",
        ),
    ],
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out", "-o", help="Write latents to .npy (means then stds), .csv or .h5 instead of CSV on stdout."
        ),
    ] = None,
    labels: Annotated[
        Optional[str],
        typer.Option(
            "--labels",
            help="CVAE: the label of every image (one digit) or of each image (a comma list), where the source has none.",
        ),
    ] = None,
    plot: Annotated[
        Optional[Path],
        typer.Option(
            "--plot", help="Also draw the tutorial's scatter plots of means and standard deviations to this PNG."
        ),
    ] = None,
    reconstruct: Annotated[
        Optional[Path],
        typer.Option("--reconstruct", help="Also write the first 16 inputs above their reconstructions to this PNG."),
    ] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Encode only the first N images.")] = None,
    model: ModelOption = DEFAULT_PICTURES,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
) -> None:
    """Encode images to latent means and standard deviations (CSV on stdout by default).

    Example: mnistgen encode synth/ --model cvae-2d --plot latent.png > latents.csv
    """
    chosen_labels = parse_int_list(labels, "--labels") if labels is not None else None
    if out is not None and out.suffix.lower() not in (".npy", ".csv", ".h5", ".hdf5"):
        raise typer.BadParameter(f"{out}: use a name ending in .npy, .csv or .h5", param_hint="--out")
    with _user_errors("nothing was left half-written"):
        import numpy as np

        from mnistgen import explore, export, sources

        weights = _check_model(model)
        found = sources.read(sources_, limit)
        if not quiet:
            for note in found.notes:
                _stderr(f"note: {note}")
        image_labels = found.labels
        if chosen_labels is not None:
            if len(chosen_labels) not in (1, len(found.images)):
                raise MnistgenError(
                    f"--labels has {len(chosen_labels)} values for {len(found.images)} images: give one for all, or one per image"
                )
            image_labels = np.resize(np.asarray(chosen_labels, dtype=np.int64), len(found.images))
        if weights.config.conditional and image_labels is not None and image_labels.max() >= weights.config.num_classes:
            raise MnistgenError(
                f"label {int(image_labels.max())} is out of range: model {weights.name} knows labels 0-{weights.config.num_classes - 1}"
            )
        from mnistgen.runtime import select_device
        from mnistgen.sample import load_model, make_decoder

        device_name = select_device(device)
        net = load_model(weights)
        means, stds = explore.encode(net, found.images, image_labels if weights.config.conditional else None)
        if plot is not None:
            export.write_latent_scatter(plot, means, stds, image_labels, weights.name)
        if reconstruct is not None:
            shown = slice(0, RECON_COLUMNS)
            rebuilt = explore.reconstruct(
                net,
                make_decoder(weights, device_name),
                found.images[shown],
                None if image_labels is None else image_labels[shown],
            )
            export.write_png(reconstruct, export.upscale(export.tile(np.stack([found.images[shown], rebuilt])), 2))
        if out is None:
            sys.stdout.write(export.latents_csv(found.names, image_labels, means, stds))
        else:
            export.write_latents(out, found.names, image_labels, means, stds)
            _emit({"count": len(means), "out": str(out), "model": weights.name})


# -- evaluate -------------------------------------------------------------------------------------


@app.command()
def evaluate(
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model", "-m", help="Generator to score (name or path) [default: cvae, unless --images is given]."
        ),
    ] = None,
    images: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--images",
            help="Score these images instead of a model's samples: a folder (ImageFolder layout), an HDF5/IDX file from any tool.",
        ),
    ] = None,
    count: Annotated[int, typer.Option("--count", "-n", min=10, max=100_000, help="Samples per digit.")] = 1000,
    classifier: Annotated[
        str, typer.Option("--classifier", help="The verifier: classifier weights --min-confidence filters with.")
    ] = "classifier",
    judge_name: Annotated[
        str,
        typer.Option(
            "--judge", help="The independent classifier that grades (accuracy, FID features, TSTR); never the verifier."
        ),
    ] = "judge",
    data: Annotated[
        Optional[Path], typer.Option("--data", exists=True, help="MNIST (for the test set) [default: the cache].")
    ] = None,
    tstr: Annotated[
        bool,
        typer.Option(
            "--tstr",
            help="Also train the classifier on the samples and on as many real images; report both test accuracies.",
        ),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed for the samples.")] = 0,
    temperature: Annotated[
        Optional[float],
        typer.Option(
            "--temperature",
            "-t",
            min=0.0,
            max=10.0,
            help="Prior scale for the samples [default: the model card's recommendation, else 1].",
        ),
    ] = None,
    sharpen: SharpenOption = None,
    truncation: TruncationOption = None,
    min_confidence: MinConfidenceOption = None,
    prior: Annotated[PriorKind, typer.Option("--prior", help="Prior for the samples, as in generate.")] = "auto",
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
) -> None:
    """Score a generator: test-set loss, classifier accuracy and confidence on its samples, classifier-feature FID, TSTR.

    Example: mnistgen evaluate --model cvae-2d --count 1000 --data ../shared/data/mnist
    """
    if model is not None and images:
        raise typer.BadParameter("score a --model or --images, not both", param_hint="--model/--images")
    sampling = {
        "--temperature": temperature,
        "--sharpen": sharpen,
        "--truncation": truncation,
        "--min-confidence": min_confidence,
        "--prior": None if PriorKind(prior) is PriorKind.auto else prior,
    }
    given = [name for name, value in sampling.items() if value is not None]
    if images and given:
        raise typer.BadParameter(
            f"{', '.join(given)} shape a model's samples; --images are scored as they are: drop them",
            param_hint="--images",
        )
    with _user_errors("nothing was written"):
        from mnistgen import data as data_lib
        from mnistgen import evaluate as ev
        from mnistgen import sources

        weights = None if images else _check_model(model or DEFAULT_GENERATOR)
        verifier_weights = _check_model(classifier, "--classifier")
        judge = _check_model(judge_name, "--judge")
        ev.check_independent(judge, verifier_weights)
        dataset = data_lib.load(data)
        if dataset.test is None:
            raise MnistgenError(
                f"{dataset.source} has no test split: evaluate compares with the MNIST test set; pass --data DIR with the t10k files"
            )
        from mnistgen.runtime import select_device

        device_name = select_device(device)
        from mnistgen import classifier as clf
        from mnistgen.sample import load_model, make_decoder
        from mnistgen.train import test_loss

        net = clf.load(judge)
        reference = ev.reference_features(net, dataset.test)
        report = {
            "judge": judge.name,
            "judge_test_accuracy": round(clf.accuracy(net, dataset.test), 4),
            "verifier": verifier_weights.name,
        }
        if weights is not None:
            from mnistgen.sample import default_temperature, make_prior

            chosen_prior = make_prior(weights, PriorKind(prior).value, truncation)
            temperature = default_temperature(weights, temperature)
            report.update(
                model=weights.name,
                model_sha256=weights.sha256,
                seed=seed,
                temperature=temperature,
                prior=chosen_prior.kind,
                truncation=chosen_prior.truncation or 0,
            )
            report["test_set"] = {
                k: round(float(v), 3) for k, v in test_loss(load_model(weights), dataset.test).items()
            }
            decoder = make_decoder(weights, device_name, sharpen=sharpen)
            report.update(sharpen=decoder.sharpen, precision=decoder.precision)
            confidence = clf.confidence_filter(weights, min_confidence, verifier_weights, device_name)
            pictures, labels = ev.samples(decoder, weights, count, seed, temperature, chosen_prior, confidence)
            if confidence is not None:
                report.update(min_confidence=confidence.threshold, acceptance_rate=round(confidence.acceptance, 4))
        else:
            found = sources.read(images)
            pictures, labels = found.images, found.labels
            report["images"] = [str(p) for p in images]
        verify = confidence.judge if weights is not None and confidence is not None else None
        verify = verify or clf.verifier(verifier_weights, device_name)
        report["samples"] = ev.grade(net, pictures, labels, reference, verify)
        if tstr:
            report["tstr"] = ev.tstr(pictures, labels, dataset.train, dataset.test, seed, judge.config)
        if not quiet:
            _evaluation_table(report)
        _emit(report)


def _evaluation_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("measure", "value", title=f"mnistgen evaluate: {report.get('model', 'images')}")
    for key, value in report.get("test_set", {}).items():
        table.add_row(f"test set {key.replace('test_', '')} (per image)", f"{value:.2f}")
    scores = report["samples"]
    table.add_row("samples", str(scores["images"]))
    if "accuracy" in scores:
        table.add_row(f"judge accuracy ({report['judge']})", f"{scores['accuracy']:.2%}")
        if "verifier" in scores:
            table.add_row(f"verifier accuracy ({report['verifier']})", f"{scores['verifier']['accuracy']:.2%}")
        table.add_row("  per digit", "  ".join(f"{d}:{a:.1%}" for d, a in scores["accuracy_per_label"].items()))
    table.add_row("mean confidence", f"{scores['mean_confidence']:.3f}")
    table.add_row("predicted classes", " ".join(str(v) for v in scores["class_histogram"]))
    table.add_row("judge-feature FID", f"{scores['fid']:.2f}")
    if "tstr" in report:
        t = report["tstr"]
        table.add_row(
            f"TSTR ({t['train_images']} images, {t['epochs']} epochs)",
            f"synthetic {t['synthetic_accuracy']:.2%} vs real {t['real_accuracy']:.2%}",
        )
    Console(stderr=True).print(table)


# -- models and cache ---------------------------------------------------------------------------

models_app = typer.Typer(rich_markup_mode=None)
app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
def models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per model instead of a table.")] = False,
) -> None:
    """List every model found by name (shipped, and in $MNISTGEN_WEIGHTS); `models show NAME` prints one card.

    Example: mnistgen models --json
    """
    if ctx.invoked_subcommand is not None:
        return
    with _user_errors():
        from mnistgen import api

        found = api.models()
        if as_json:
            for row in found:
                _emit(row)
            return
        from rich.console import Console
        from rich.table import Table

        table = Table("name", "kind", "latent", "epochs", "test loss", "sha256", "where")
        for row in found:
            if "error" in row:
                table.add_row(row["name"], "[red]unreadable[/red]", "", "", "", "", row["error"])
                continue
            loss = f"{row['test_loss']:.2f}" if row["test_loss"] is not None else "-"
            table.add_row(
                row["name"],
                row["kind"],
                str(row["latent"] or "-"),
                str(row["epochs"]),
                loss,
                row["sha256"][:12],
                row["path"],
            )
        Console().print(table)


@models_app.command("show")
def models_show(name: Annotated[str, typer.Argument(help="A model name or path.")]) -> None:
    """Print a model's card (JSON).

    Example: mnistgen models show cvae-2d
    """
    with _user_errors():
        weights = _check_model(name, "NAME")
        sys.stdout.write(json.dumps({**weights.card, "path": str(weights.path)}, indent=2) + "\n")


cache_app = typer.Typer(rich_markup_mode=None)
app.add_typer(cache_app, name="cache")


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


@cache_app.callback(invoke_without_command=True)
def cache(ctx: typer.Context) -> None:
    """Show the cache ($MNISTGEN_DATA, default ~/.cache/mnistgen: downloads, exported decoders); `cache clear` empties it.

    Example: mnistgen cache
    """
    if ctx.invoked_subcommand is not None:
        return
    from mnistgen.data import cache_dir

    root = cache_dir()
    entries = {p.name: _tree_size(p) for p in sorted(root.iterdir())} if root.is_dir() else {}
    _emit({"cache": str(root), "bytes": sum(entries.values()), "entries": entries})


@cache_app.command("clear")
def cache_clear() -> None:
    """Delete the cache: downloads and exported inference models (they are made again when needed).

    Example: mnistgen cache clear
    """
    import shutil

    from mnistgen.data import cache_dir

    root = cache_dir()
    freed = _tree_size(root)
    if root.is_dir():
        shutil.rmtree(root)
    _emit({"cleared": str(root), "bytes": freed})


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except MnistgenError as exc:  # raised while parsing (e.g. a damaged --model file)
        _stderr(f"Error: {exc}")
        sys.exit(EXIT_ERROR)
