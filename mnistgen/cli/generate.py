"""`mnistgen generate`: the whole request checked and the job planned before Paddle loads
(mnistgen.generate), then written behind a progress bar; a tar streamed on stdout is kept clean of
everything else that would print there.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated, BinaryIO, Optional

import typer

from mnistgen.cli.options import (
    DeviceOption,
    MinConfidenceOption,
    ModelOption,
    QuietOption,
    SharpenOption,
    TemperatureOption,
    TruncationOption,
    command_line,
    refuse_unread,
)
from mnistgen.cli.parsing import check_classifiers, check_model, parse_classes, parse_digits, parse_shard
from mnistgen.cli.plumbing import OS_FIX, emit, stderr, user_errors
from mnistgen.cli.progress import progress_bar
from mnistgen.config import DEFAULT_GENERATOR, MAX_COUNT, MAX_SEED, Format, Precision, PriorKind, SamplingRequest
from mnistgen.errors import MnistgenError
from mnistgen.runtime import THREADS_ENV, Device


def _generate_interrupted(out: Path, fmt: Optional[Format], swapped: bool) -> str:
    """What a stopped generate left: a --force PNG run swaps its output in at the end; a PNG folder
    keeps its whole files for --resume; a file appears only when complete; a stream is cut short."""
    if swapped:
        return "the earlier output is as it was; run the same command again to replace it"
    from mnistgen import outputs  # no Paddle

    written = outputs.infer_format(out, fmt)
    if str(out) == outputs.STDOUT:
        return "the tar stream on stdout is incomplete; run the command again"
    if written is Format.png:
        return "every file already written is complete; finish with --resume"
    return f"no {written.value} output was written (it appears only when complete); run the command again"


def _generate_failed(out: str, fmt: Optional[Format], swapped: bool) -> str:
    """What to do after a failed write (a full disk): a PNG folder keeps its whole images, so once there
    is space --resume finishes it; any other output is removed whole."""
    from mnistgen import outputs  # no Paddle

    if not swapped and outputs.infer_format(out, fmt) is Format.png:
        return (
            "free space, then finish with --resume (every image already written is complete), or choose another --out"
        )
    return OS_FIX


def _refuse_unread(ctx: typer.Context, out: str, fmt: Optional[Format], scale: int) -> None:
    """Usage errors for options given that this request would not read, so that none seems to have had an
    effect: an enlarging --scale (a grid's only; --scale 1, which enlarges nothing, is in every command line
    generate records, so repeating one keeps working), --force on a stream (it replaces nothing).
    --classifier beside --min-confidence 0 is let through: the refusal of a card's missing verifier
    names both ways out, and a user who adds the second should not meet a third error. What else
    depends on the model (its card's verifier, its labels) is checked when it is read."""
    from mnistgen import outputs  # no Paddle

    unread = (
        (
            scale != 1 and outputs.infer_format(out, fmt) is not Format.grid,
            ("scale",),
            "{given} enlarges a grid picture: drop it, or write one (--format grid, or an --out ending in .png)",
        ),
        (out == outputs.STDOUT, ("force",), "--out - streams a new tar and replaces no file: drop {given}"),
    )
    refuse_unread(ctx, unread)


def generate(
    ctx: typer.Context,
    digit: Annotated[
        Optional[str],
        typer.Option(
            "--digit",
            "-d",
            metavar="DIGITS",
            help=(
                "Label(s) to generate: 7, a list 0,3,7, or all (every label the model trained on) [default: all; "
                "none for an unconditional model]."
            ),
        ),
    ] = None,
    class_: Annotated[
        Optional[str],
        typer.Option(
            "--class",
            metavar="CLASSES",
            help=(
                "The general form of --digit for other datasets: class names from the model card or indices, e.g. "
                "Sneaker,0, or all."
            ),
        ),
    ] = None,
    count: Annotated[int, typer.Option("--count", "-n", min=1, max=MAX_COUNT, help="Images per digit.")] = 100,
    out: Annotated[
        str,  # as text: a final "/" says "a folder"
        typer.Option(
            "--out",
            "-o",
            metavar="PATH",
            help=(
                "Where to write: a directory for png/idx (a name without a suffix, or ending in /), a file for "
                "hdf5/npz/grid/tar ({shard} in the name: the shard's index); - streams a tar to stdout (the JSON "
                "summary then goes to stderr)."
            ),
        ),
    ] = "synth",
    fmt: Annotated[
        Optional[Format],
        typer.Option(
            "--format",
            "-f",
            help=(
                "png: OUT/<digit>/<index>.png + metadata.jsonl; hdf5; npz; idx (MNIST file pair); grid (one "
                "preview PNG, a row per digit); tar (WebDataset shard: KEY.png/.cls/.json) [default: from --out's "
                "suffix (.h5, .npz, .png, .tar; - is tar), png for a name without one; another suffix is refused]."
            ),
        ),
    ] = None,
    model: ModelOption = DEFAULT_GENERATOR,
    seed: Annotated[
        Optional[int],
        typer.Option(
            "--seed",
            min=0,
            max=MAX_SEED,
            help=(
                "Seed: the same seed gives byte-identical images whatever the format, batch or shard [default: "
                "with --resume the output's, else random; recorded in the command line and the summary]."
            ),
        ),
    ] = None,
    temperature: TemperatureOption = None,
    sharpen: SharpenOption = None,
    truncation: TruncationOption = None,
    prior: Annotated[
        PriorKind,
        typer.Option(
            "--prior",
            help=(
                "standard: N(0, I); fitted: the Gaussian fitted to the training data's latents per digit (ex-post "
                "density estimation); mixture: the Gaussian mixture fitted to them per digit; auto: what the model "
                "card recommends."
            ),
        ),
    ] = PriorKind.auto,
    shard: Annotated[
        Optional[str],
        typer.Option(
            "--shard",
            metavar="I/N",
            help="Write only part i of n (counting from 0), e.g. 0/4; n shards together equal one run.",
        ),
    ] = None,
    scale: Annotated[
        int, typer.Option("--scale", min=1, max=32, help="Enlarge a grid picture by this factor (nearest neighbour).")
    ] = 1,
    min_confidence: MinConfidenceOption = None,
    classifier: Annotated[
        Optional[str],
        typer.Option(
            "--classifier",
            metavar="NAMES",
            help=(
                "Classifier weights for --min-confidence (name or path); several, comma-separated, must all agree "
                "[default: the model card's verifier (its companion classifier), else the shipped classifier]."
            ),
        ),
    ] = None,
    threads: Annotated[
        Optional[int],
        typer.Option(
            "--threads",
            min=1,
            max=1024,
            help=(
                "CPU threads for decoding and writing [default: the CPUs this job may use: affinity, cgroup quota, "
                "SLURM_CPUS_PER_TASK, OMP_NUM_THREADS]."
            ),
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
            help=(
                "CPU decoder arithmetic: auto picks bf16 on CPUs with fast bfloat16 (AVX512-BF16 or AMX; about 2x "
                "faster, pixels within a few levels), else fp32. A GPU decodes in fp32 (TF32 where Paddle's "
                "defaults allow)."
            ),
        ),
    ] = Precision.auto,
    quiet: QuietOption = False,
) -> None:
    """Generate synthetic digits: COUNT per digit, as PNGs, HDF5, NPZ, MNIST IDX, a WebDataset tar or a preview grid.

    \b
    Example: mnistgen generate --digit 7 --count 1000 --out synth/
    Example: mnistgen generate --digit 7 --count 1000 --format tar --out - | tar -t
    """
    digits = parse_digits(digit)
    if digit is not None and class_ is not None:
        raise typer.BadParameter("give --digit or --class, not both", param_hint="--digit/--class")
    class_ = parse_classes(class_)
    chosen_shard = parse_shard(shard)
    if force and resume:
        raise typer.BadParameter("--force replaces, --resume keeps: choose one", param_hint="--force/--resume")
    _refuse_unread(ctx, out, fmt, scale)
    if threads is not None:
        os.environ[THREADS_ENV] = str(threads)
    swapped = force and shard is None
    failed = _generate_failed(out, fmt, swapped)  # `out` as typed: a trailing / names a folder
    with user_errors(_generate_interrupted(Path(out), fmt, swapped), failed):
        from mnistgen import generate as gen  # no Paddle: the whole request is checked before it loads
        from mnistgen import records
        from mnistgen.labels import digits_note, labels_for, resolve_classes
        from mnistgen.sampling import resolve_sampling

        seed = records.choose_seed(out, fmt, chosen_shard, resume) if seed is None else seed
        weights = check_model(model)
        if min_confidence and classifier:  # asked for: an unknown --classifier is a usage error
            check_classifiers(classifier)
        if class_ is not None:
            labels = labels_for(weights, resolve_classes(weights, class_), "--class")
        else:
            labels = labels_for(weights, digits)
        spec = resolve_sampling(weights, SamplingRequest.among(locals()))  # the sampling options, as given
        command = command_line(ctx, seed=seed)  # the seed used, given or not: repeating the line repeats the run
        job = gen.plan_job(weights, labels, count, out, seed, fmt, spec, chosen_shard, force, resume, scale, command)
        if note := gen.empty_note(job):
            stderr(f"note: {note}")
        if job.streams and sys.stdout.isatty():
            raise MnistgenError(
                "--out - would write a binary tar to the terminal: give --out FILE, or pipe it "
                "(mnistgen generate ... --out - | tar -t)"
            )
        from mnistgen import api, predictor

        sampler = api.Model(weights, device).sampler(spec)  # loads, exports and checks before the bar starts
        if note := predictor.decoder_note(sampler.decoder):
            stderr(f"note: {note}")  # printed even with --quiet: the job runs, but slower than it should
        if not quiet and class_ is None and (note := digits_note(weights, digits)):
            stderr(f"note: {note}")  # after every check: a refusal stays one line
        with progress_bar(quiet) as progress, _data_stdout(job.streams) as stream:
            task = progress.add_task("generating", total=job.size, info="")

            def show(done: int, rate: float, acceptance: float) -> None:
                rejected = f"  {1 - acceptance:5.1%} rejected" if spec.verified else ""
                progress.update(task, completed=done, info=f"{rate:6.0f} img/s{rejected}")

            summary = gen.run_job(job, sampler, show, stream)
        emit(summary, err=job.streams)


class _DataOut:
    """Standard output's binary file while it carries the tar, remembering the error a write or flush
    failed with: a full disk under `--out - > file` is then told as the stream's (the user_errors line
    names --out and partial files, which a stream has neither of)."""

    def __init__(self, raw: BinaryIO):
        self.raw, self.error = raw, None

    def _guarded(self, action, *args):
        try:
            return action(*args)
        except OSError as exc:
            self.error = self.error or exc  # the first: the writer's closing flush fails again, and is suppressed
            raise

    def write(self, data) -> int:
        return self._guarded(self.raw.write, data)

    def flush(self) -> None:
        self._guarded(self.raw.flush)

    def close(self) -> None:
        self.raw.close()


@contextlib.contextmanager
def _data_stdout(streams: bool):
    """While a command streams data on stdout: yield a binary file on the real stdout and point
    everything else that would print there (Python's sys.stdout, a library's C-level output on fd
    1) at stderr, so nothing can corrupt the stream. A reader that closes the pipe early is an Error."""
    if not streams:
        yield None
        return
    sys.stdout.flush()
    saved = sys.stdout
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test runner's capture)
        fd = None
    data = _DataOut(os.fdopen(os.dup(fd), "wb") if fd is not None else saved.buffer)
    if fd is not None:
        kept = os.dup(fd)
        os.dup2(sys.stderr.fileno(), fd)
    sys.stdout = sys.stderr
    try:
        yield data
        data.flush()
    except BrokenPipeError:
        raise MnistgenError(
            "the reader closed the pipe before the stream ended: the tar it got is incomplete"
        ) from None
    except OSError as exc:
        if exc is not data.error:  # not the stream's: the ordinary handling (user_errors)
            raise
        raise MnistgenError(
            f"cannot write the tar stream to standard output: {exc.strerror or exc}; what went out is incomplete: "
            "free space where it goes, or send it elsewhere"
        ) from None
    finally:
        sys.stdout = saved
        if fd is not None:
            os.dup2(kept, fd)
            os.close(kept)
            with contextlib.suppress(OSError):
                data.close()
