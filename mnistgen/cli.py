"""The `mnistgen` command line (Typer only): parse, validate, call the library, report.

Arguments are validated before Paddle is imported, so mistakes are reported at once and
`mnistgen --help` stays fast. `MnistgenError` becomes `Error: ...` on stderr with exit 1;
usage mistakes are Typer/Click usage errors with exit 2; Ctrl-C exits 130, SIGTERM 143; a reader of stdout
that goes away before a summary or listing is written (`| head`) exits 141, quietly. Progress goes to
stderr, results (one JSON line) to stdout.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import io
import json
import os
import shlex
import shutil
import signal
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from mnistgen.config import (
    ALL_LABELS,
    ALL_RECIPES,
    DEFAULT_GENERATOR,
    DEFAULT_JUDGE,
    DEFAULT_PICTURES,
    EVALUATE_RANGES,
    MAX_COUNT,
    MAX_PROCESSES,
    MAX_SEED,
    MIN_GRID,
    SETTING_RANGES,
    TRAIN_RANGES,
    Augment,
    ClassifierArch,
    Format,
    Likelihood,
    Precision,
    PriorKind,
    Recipe,
    TrainKind,
    TrainOptions,
    run_name,
    train_kind,
)
from mnistgen.errors import MnistgenError
from mnistgen.runtime import (
    MEMORY_ENV,
    THREADS_ENV,
    Device,
    hold_signals,
    import_numpy,
    init_distributed,
    launched_world,
    release_signals,
    select_device,
    terminate,
)
from mnistgen.version import __version__

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
EXIT_READER_GONE = 128 + 13  # SIGPIPE's number: the status of a Unix tool ended by a closed pipe (`| head`)
INTERRUPTED_NOTE = "stopped; every file already written is complete"
TRUSTED_JUDGE = 0.9  # a judge reading fewer real test images right than this gets a note beside its grades
READ_ERRNOS = (errno.ENOENT, errno.EISDIR, errno.EIO)  # failures that come from reading, not writing
MAX_OPTION_INT = MAX_SEED  # the largest number an integer-list option takes (--seeds); bounds every list
SHOWN_DIGITS = 20  # of a number too long to echo whole


def _bounds(key: str, ranges: dict = TRAIN_RANGES) -> dict:
    """An option's min and max for Typer, from config.TRAIN_RANGES or EVALUATE_RANGES (which mnistgen.fit
    and mnistgen.evaluate check too)."""
    _, low, high = ranges[key]
    return {"min": low, "max": high}


def _recipes_default(field: str) -> str:
    """train's `[default: ...]` for an option a recipe sets, read from config's recipes (the one place
    their values are written): `the recipe's, 64 in every recipe`, or each value with its recipes."""
    recipes: dict = {}
    for recipe in ALL_RECIPES:
        recipes.setdefault(getattr(recipe, field), []).append(recipe.name)

    def shown(value) -> str:
        if isinstance(value, bool):
            return "on" if value else "off"
        return f"{value:g}" if isinstance(value, float) else str(value)

    if len(recipes) == 1:
        return f"[default: the recipe's, {shown(next(iter(recipes)))} in every recipe]"
    each = "; ".join(f"{shown(value)} ({', '.join(names)})" for value, names in recipes.items())
    return f"[default: the recipe's: {each}]"


def _interrupted(exc: KeyboardInterrupt, note: str = INTERRUPTED_NOTE) -> int:
    """The one `Interrupted:` line (an atomic.Interrupted's own note, which says what its held step left on
    disk, else `note`) and the exit code: 130 for Ctrl-C, 143 for SIGTERM (runtime.Terminated)."""
    from mnistgen import parallel

    if not parallel.launched_by_mnistgen():  # a rank train started: the launcher says it, once
        _stderr(f"Interrupted: {getattr(exc, 'note', None) or note}.")
    return getattr(exc, "exit_code", EXIT_INTERRUPTED)


class _Commands(TyperGroup):
    """The command group: a Ctrl-C or SIGTERM outside a command's _user_errors (while its arguments are
    parsed, or as it returns) ends as inside one, where Typer would exit 130 without a word."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise typer.Exit(_interrupted(exc)) from None


app = typer.Typer(
    name="mnistgen",  # its help is _root's docstring (a help= here would hide that docstring's example)
    cls=_Commands,
    no_args_is_help=True,
    rich_markup_mode=None,  # plain Click messages: one-line usage errors, no boxes
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class _Command(typer.core.TyperCommand):
    """A command whose arguments show their metavar alone: Typer writes a required argument as
    `{name}` in the usage line and adds its Python type in the list (`SOURCES <list[Path]>`)."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            pieces += [_by_metavar(param)] if _by_metavar(param) else param.get_usage_pieces(ctx)
        return pieces

    def format_options(self, ctx, formatter) -> None:
        sections = {"argument": [], "option": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                sections[param.param_type_name].append((_by_metavar(param) or record[0], record[1]))
        for title, kind in (("Arguments", "argument"), ("Options", "option")):
            if sections[kind]:
                with formatter.section(title):
                    formatter.write_dl(sections[kind])


def _by_metavar(param) -> Optional[str]:
    """How an argument with a metavar is shown (`SOURCES...` when it takes several); None for the rest."""
    if param.param_type_name != "argument" or param.metavar is None:
        return None
    return param.metavar + ("..." if param.nargs != 1 else "")


DeviceOption = Annotated[
    Device, typer.Option("--device", help="Where to run: auto picks a CUDA GPU when Paddle has one, else the CPU.")
]
TruncationOption = Annotated[
    Optional[float],
    typer.Option(
        "--truncation",
        min=SETTING_RANGES["truncation"].low,
        max=SETTING_RANGES["truncation"].high,
        help=(
            "Redraw latents whose standard-normal draw is longer than R (fewer off-label outliers, less variety); "
            "0: keep all [default: the model card's recommendation, else 0]."
        ),
    ),
]
MinConfidenceOption = Annotated[
    Optional[float],
    typer.Option(
        "--min-confidence",
        min=SETTING_RANGES["min_confidence"].low,
        max=SETTING_RANGES["min_confidence"].high,
        help=(
            "Keep only samples the classifier assigns to their digit with at least this probability (e.g. 0.9); 0 "
            "keeps all [default: the model card's recommendation, else 0]."
        ),
    ),
]
SharpenOption = Annotated[
    Optional[float],
    typer.Option(
        "--sharpen",
        min=SETTING_RANGES["sharpen"].low,
        max=SETTING_RANGES["sharpen"].high,
        help=(
            "Push pixels towards black or white: the decoder's last layer scaled by K (1: its blurry mean image) "
            "[default: the model card's recommendation, else 1]."
        ),
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or log lines on stderr.")]
ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        metavar="NAME|PATH",
        help=(
            "Weights to use: a name (cvae, cvae-2d, vae-2d, or one in $MNISTGEN_WEIGHTS) or a path to a "
            ".safetensors file or run directory."
        ),
    ),
]


def _stderr(message: str) -> None:
    typer.echo(message, err=True)


PIPED_WIDTH = 10_000  # a table written to a pipe or file keeps its natural width: no cell is cut short


class _ReaderGone(Exception):
    """Standard output's reader went away (`| head`, `| true`) while a summary or listing was written:
    the command's work is done, so main() ends quietly with EXIT_READER_GONE, as a Unix tool would."""


def _write_result(text: str, data: Optional[str] = None) -> None:
    """Write a command's result on stdout and flush it, so that a failed write is told here: a full disk
    is an Error; a reader that went away is _ReaderGone after a summary or listing, an Error when the text
    is the data itself (`data` names it). Every byte is written, the count checked: a write larger than a
    pipe's buffer, cut short when the reader leaves, returns its short count, which Python's text layer
    ignores - the rest was dropped without an error."""
    stream = getattr(sys.stdout, "buffer", None)
    try:
        if stream is None:  # a text-only stand-in (a test's capture)
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        sys.stdout.flush()
        view = memoryview(text.encode(sys.stdout.encoding or "utf-8", sys.stdout.errors or "strict"))
        while view:
            view = view[stream.write(view) :]
        stream.flush()
    except UnicodeEncodeError as exc:
        raise MnistgenError(
            f"standard output's encoding ({exc.encoding}) cannot hold {data or 'the result'}: set "
            "PYTHONIOENCODING=utf-8"
        ) from None
    except BrokenPipeError:
        if data is None:
            raise _ReaderGone() from None
        raise MnistgenError(
            f"the reader closed standard output before {data} ended: what it read is incomplete"
        ) from None
    except OSError as exc:
        raise MnistgenError(
            f"cannot write to standard output: {exc.strerror or exc}; free space where it goes, or send it elsewhere"
        ) from None


class _Capture(io.StringIO):
    """Text for stdout, held until it is whole: it tells rich stdout's encoding, so that an ASCII
    stdout (a Windows code page, PYTHONIOENCODING=ascii) gets ASCII table borders."""

    @property
    def encoding(self) -> str:
        return getattr(sys.stdout, "encoding", None) or "utf-8"


def _show_result(*tables) -> None:
    """Rich tables that are a command's result, on stdout (through _write_result): the terminal's width,
    or unlimited when piped."""
    from rich.console import Console

    terminal = sys.stdout.isatty()
    width = shutil.get_terminal_size().columns if terminal else PIPED_WIDTH
    console = Console(file=_Capture(), force_terminal=terminal, width=width)  # rich writes nothing itself
    for table in tables:
        console.print(table)
    _write_result(console.file.getvalue())


@contextlib.contextmanager
def _user_errors(
    interrupted_note: str = INTERRUPTED_NOTE,
    os_fix: str = "free space or choose another --out (partial files were removed)",
):
    """Turn library errors into one line on stderr and the documented exit codes; `os_fix` is what
    to do about a failed read or write (disk full, permissions) in this command. Every command's work
    starts here: numpy is imported while main() holds Ctrl-C and SIGTERM (see runtime.hold_signals),
    then they are let through."""
    try:
        import_numpy()
        release_signals()
        yield
    except MnistgenError as exc:
        _stderr(f"Error: {exc}")
        raise typer.Exit(EXIT_ERROR) from None
    except KeyboardInterrupt as exc:
        raise typer.Exit(_interrupted(exc, interrupted_note)) from None
    except MemoryError:  # a limit the memory budget does not see (ulimit -v): partial files were removed
        _stderr(
            "Error: out of memory: ask for less at once (fewer images or frames, a smaller --scale), or set "
            f"{MEMORY_ENV} to the memory this process may use, to be told before any work"
        )
        raise typer.Exit(EXIT_ERROR) from None
    except OSError as exc:  # disk full, file-size limit, permissions changed under us
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        reason = exc.strerror or " ".join(str(exc).split())  # one line, whatever the library put in it
        verb = "read" if exc.errno in READ_ERRNOS else "write"
        _stderr(f"Error: cannot {verb}{where}: {reason}; {os_fix}")
        raise typer.Exit(EXIT_ERROR) from None


def _version_callback(value: bool) -> None:
    if value:
        _write_result(f"mnistgen {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Train a VAE / conditional VAE on MNIST with PaddlePaddle and generate synthetic handwritten digits.

    \b
    Example: mnistgen generate --digit 7 --count 1000 --out synth/
    """


# -- argument parsing (pure Python: runs before Paddle is imported) ----------------------------


def parse_natural(word: str, option: str) -> Optional[int]:
    """`word` as a non-negative integer written in ASCII digits, else None (`²`, `-1`, `5x`); one
    above MAX_OPTION_INT is a usage error, refused before int() reads its digits."""
    word = word.strip()
    if not (word.isascii() and word.isdigit()):
        return None
    digits = word.lstrip("0") or "0"
    if len(digits) > len(str(MAX_OPTION_INT)) or int(digits) > MAX_OPTION_INT:
        shown = word if len(word) <= SHOWN_DIGITS else f"{word[:SHOWN_DIGITS]}... ({len(word)} digits)"
        raise typer.BadParameter(f"{shown} is too large: use at most {MAX_OPTION_INT}", param_hint=option)
    return int(digits)


def parse_int_list(text: str, option: str, what: str = "non-negative integers (e.g. 5,25)") -> list[int]:
    """`5,25` -> [5, 25]: every integer-list option's parser (--digit, --indices, --seeds, --labels, --dims)."""
    values = [parse_natural(p, option) for p in text.split(",")]
    if not text.strip() or None in values:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of {what}", param_hint=option)
    return values


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


def parse_labels(text: str, option: str) -> list:
    """`3,8` or `circle,ring`: label indices (ASCII digits) or the model's class names, which the model
    maps and checks (as generate --class)."""
    names = parse_names(text, option, "3,8 or circle,ring")
    return [parse_natural(name, option) if name.isascii() and name.isdigit() else name for name in names]


def parse_label(text: str, option: str):
    """One label: an index (ASCII digits) or a class name, as parse_labels reads each of several."""
    labels = parse_labels(text, option)
    if len(labels) != 1:
        raise typer.BadParameter(f"{text!r}: give one label, e.g. 2 or Trouser", param_hint=option)
    return labels[0]


def parse_digits(text: Optional[str]) -> Optional[list[int]]:
    """`7`, `0,3,7` -> sorted unique labels; None for `all` or when not given (every label the model
    trained on: a model of 5 or 13 classes has no label 9 or has 12). The model checks the range."""
    if text is None or text.strip().lower() == ALL_LABELS:
        return None
    return sorted(set(parse_int_list(text, "--digit", "labels (e.g. 0,3,7) or all; give class names to --class")))


def parse_names(text: str, option: str, example: str) -> list[str]:
    """`a,b,c` -> the names, stripped; an empty name (`""`, `a,,b`) is a usage error."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise typer.BadParameter(
            f"{text!r} has an empty name: give comma-separated names, e.g. {example}", param_hint=option
        )
    return names


def parse_classes(text: Optional[str]) -> Optional[str]:
    """--class `Sneaker,0`, checked before the model card is read: no empty item, and an index is
    written in ASCII digits (`²` is refused, not read as 2)."""
    if text is None:
        return None
    for item in parse_names(text, "--class", "Sneaker,0"):
        if item.isdigit() and parse_natural(item, "--class") is None:
            raise typer.BadParameter(
                f"{item!r} is not a class index: write it with the digits 0-9", param_hint="--class"
            )
    return text


def _check_model(spec: str, option: str = "--model"):
    """Resolve and check weights for their role: an unknown name is a usage error; a damaged
    file, or weights of the wrong kind, an Error."""
    from mnistgen import checkpoint

    try:
        checkpoint.resolve(spec)
    except MnistgenError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
    return checkpoint.inspect_role(spec, option)


def _check_classifiers(spec: str) -> None:
    """`_check_model` for each classifier of `--classifier NAME[,NAME...]`."""
    from mnistgen import sample

    try:
        names = sample.verifier_specs(spec)
    except MnistgenError as exc:
        raise typer.BadParameter(str(exc), param_hint="--classifier") from None
    for name in names:
        _check_model(name, "--classifier")


# -- progress -----------------------------------------------------------------------------------


WIDE_PROGRESS = 100  # columns the full progress line needs (a long stage, a 7-digit count, train's info)
SHORT_BAR, SHORT_BAR_FROM = 10, 60  # a narrower terminal's bar, and the width it needs one


def _progress(quiet: bool, log: Optional[bool] = None):
    """A rich progress bar on stderr, or a stand-in with the same interface: silent (`quiet`), or plain
    lines (`log`; by default when stderr is no terminal, as in a batch job's log file, where rich
    would draw only the end). On a terminal narrower than WIDE_PROGRESS (where rich would squeeze
    columns to nothing, the count first) the line is the stage, a short bar (from SHORT_BAR_FROM
    columns), the count and the time left, then what fits of the info (rate, rejected share)."""
    if quiet:
        return _NullProgress()
    from rich.console import Console

    console = Console(stderr=True)
    if log or (log is None and not console.is_terminal):
        return _LogProgress()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Column

    if console.width < WIDE_PROGRESS:
        kept = Column(no_wrap=True)
        bar = [BarColumn(bar_width=SHORT_BAR)] if console.width >= SHORT_BAR_FROM else []
        return Progress(
            TextColumn("{task.description}", table_column=kept),
            *bar,
            MofNCompleteColumn(table_column=kept),
            TimeRemainingColumn(table_column=kept),
            TextColumn("{task.fields[info]}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
            console=console,
            transient=False,
            expand=True,  # the info column takes what is left, and only that
        )
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
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


LOG_EVERY = 30.0  # seconds between a task's progress lines in a log


class _LogProgress(_NullProgress):
    """Progress for a log (stderr a file or a pipe): a plain line per task when it starts, every
    LOG_EVERY seconds, and when it completes (`generating 12,288/100,000 (12%)  2731 img/s, 0:00:45`),
    so a long batch job shows how far it is; `print` writes its line to stderr."""

    def __init__(self):
        self.tasks: list[dict] = []

    def __exit__(self, *exc):
        for task in self.tasks:
            if not task["ended"]:
                self._line(task)
        return False

    def add_task(self, description, total=None, info="", **fields):
        self.tasks.append({"description": description, "total": total, "completed": 0, "info": info,
                           "start": time.monotonic(), "shown": None, "ended": False})  # fmt: skip
        return len(self.tasks) - 1

    def update(self, task_id, completed=None, advance=None, total=None, description=None, info=None, **fields):
        task = self.tasks[task_id]
        if completed is not None and completed < task["completed"]:
            task["ended"] = False  # counting again (train's next epoch): its end is told again
        changes = {"completed": completed, "total": total, "description": description, "info": info}
        task.update({key: value for key, value in changes.items() if value is not None})
        task["completed"] += advance or 0
        done = task["total"] is not None and task["completed"] >= task["total"]
        now = time.monotonic()
        if (done and not task["ended"]) or task["shown"] is None or now - task["shown"] >= LOG_EVERY:
            self._line(task, now)
            task["ended"] = done

    def _line(self, task: dict, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        task["shown"] = now
        total, done = task["total"], task["completed"]
        count = f"{done:,}/{total:,} ({done / total:.0%})" if total else f"{done:,}"
        elapsed = datetime.timedelta(seconds=int(now - task["start"]))  # 0:00:45, as rich shows it
        info = f"  {task['info'].strip()}" if task["info"] and task["info"].strip() else ""
        _stderr(f"{task['description']} {count}{info}, {elapsed}")

    def print(self, *objects, **kwargs):
        _stderr(" ".join(str(obj) for obj in objects))


def command_line(ctx: typer.Context, **chosen) -> str:
    """The command as an explicit, reproducible line: every option with its parsed value, and with the
    values in `chosen` (by parameter name) for those the command chose itself (a random seed)."""
    words = ["mnistgen", ctx.info_name or ""]
    for param in ctx.command.params:
        value = chosen.get(param.name, ctx.params.get(param.name))
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


def _emit(summary: dict, err: bool = False) -> None:
    """The one result line on stdout (on stderr when stdout carries data, err=True)."""
    if not err:
        _write_result(json.dumps(summary) + "\n")
        return
    sys.stderr.write(json.dumps(summary) + "\n")
    sys.stderr.flush()


# -- train --------------------------------------------------------------------------------------


class _TrainProgress(contextlib.ExitStack):
    """Bridges the library's TrainCallback to a rich bar (a null one with --quiet). The bar starts
    with the first epoch: one stopped before it draws an empty line, so a refusal while the data
    loads would not be one error line."""

    def __init__(self, quiet: bool, where: Optional[str] = None, tested: bool = False):
        super().__init__()
        self.quiet, self.bar, self.task, self.epochs = quiet, None, None, 0
        self.where = where  # "cpu, into runs/x": announced with the plan (None: quiet)
        self.tested = tested  # --test given: nothing is held out for testing

    @property
    def progress(self):
        if self.bar is None:
            self.bar = self.enter_context(_progress(self.quiet))
        return self.bar

    def on_plan(self, config, options, images: int):
        if self.where:
            counted = f"{images:,} image{'' if images == 1 else 's'}"
            _stderr(f"training {config.kind} (recipe {options.recipe}, latent {config.latent}) on {counted} "
                    f"({self._held_out(options)}), {self.where}")  # fmt: skip

    def _held_out(self, options) -> str:
        """What train.hold_out keeps from the images on_plan counts (the card's training.holdout has the counts)."""
        from mnistgen.data import TEST_FRACTION, VAL_FRACTION

        if "indices" in options.extra:
            return "--indices names every training image: none held out"
        tests = (
            "tested on --test" if self.tested else f"{TEST_FRACTION:.0%} for testing unless the data has a test split"
        )
        return f"{VAL_FRACTION:.0%} of each label held out for validation, {tests}; at least 1 each"

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

    def on_stage(self, text):
        if self.where:  # not with --quiet
            self.progress.console.print(text)


@app.command()
def train(
    ctx: typer.Context,
    model: Annotated[
        Optional[TrainKind],
        typer.Option(
            "--model",
            "-m",
            help=(
                "What to train [default: what --recipe trains, else cvae]: vae (unconditional), cvae "
                "(label-conditioned), or the classifier that evaluate and "
                "--min-confidence use."
            ),
        ),
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            "-o",
            help=(
                "Run directory for checkpoints, metrics and sample grids [default: runs/<model>-<latent>d, or "
                "runs/<model> when the data's size chooses the latent]."
            ),
        ),
    ] = None,
    data: Annotated[
        Optional[Path],
        typer.Option(
            "--data",
            exists=True,
            help=(
                "A directory of MNIST's IDX files (.gz or not), the tutorial's train.mat, an ImageFolder "
                "DIR/<class>/*.png|jpg|jpeg|bmp|gif|tif|tiff|webp (class names from the folders), a flat folder of "
                "pictures (--model vae only), or an .h5/.npz written by generate [default: the MNIST cache]."
            ),
        ),
    ] = None,
    download: Annotated[
        bool,
        typer.Option(
            "--download",
            help="Download MNIST into the cache ($MNISTGEN_DATA or ~/.cache/mnistgen) first, checking md5s.",
        ),
    ] = False,
    recipe: Annotated[
        Optional[str],
        typer.Option(
            "--recipe",
            metavar="NAME",
            help=(
                "A named recipe: cvae-2d (the tutorial's), cvae (the shipped default's), vae-2d; options given here "
                "override its fields [default: chosen by the size of the data, see README]."
            ),
        ),
    ] = None,
    test: Annotated[
        Optional[Path],
        typer.Option(
            "--test",
            exists=True,
            help=(
                "A labelled test set in any form --data takes [default: the source's test split, else a seeded "
                "10% of --data held out]."
            ),
        ),
    ] = None,
    epochs: Annotated[
        Optional[int],
        typer.Option(
            "--epochs",
            **_bounds("epochs"),
            help="Exactly N passes over the training set [default: the recipe's; else until the held-out loss stops "
            "improving, keeping the best epoch].",
        ),
    ] = None,
    latent: Annotated[
        Optional[int],
        typer.Option(
            "--latent",
            **_bounds("latent"),
            help=f"Latent size (2 can be drawn) {_recipes_default('latent')}.",
        ),
    ] = None,
    channels: Annotated[
        Optional[int],
        typer.Option(
            "--channels",
            **_bounds("channels"),
            help=f"Width of the first conv (the second has twice as many) {_recipes_default('channels')}.",
        ),
    ] = None,
    shift: Annotated[
        Optional[int],
        typer.Option(
            "--shift",
            **_bounds("shift"),
            help=f"Move each training image by up to N pixels, per epoch {_recipes_default('shift')}.",
        ),
    ] = None,
    companion: Annotated[
        bool,
        typer.Option(
            "--classifier/--no-classifier",
            help="Also train a companion classifier on the same images and calibrate sampling with it (a cvae).",
        ),
    ] = TrainOptions.companion,
    likelihood: Annotated[
        Optional[Likelihood],
        typer.Option(
            "--likelihood",
            help=(
                "gaussian: tanh output, squared error (the tutorial); bernoulli: sigmoid output, cross-entropy on "
                f"[0, 1] pixels {_recipes_default('likelihood')}."
            ),
        ),
    ] = None,
    kl_warmup: Annotated[
        Optional[int],
        typer.Option(
            "--kl-warmup",
            **_bounds("kl_warmup"),
            help=f"Epochs over which the KL weight rises from 0 to 1 {_recipes_default('kl_warmup')}.",
        ),
    ] = None,
    batch_size: Annotated[
        Optional[int],
        typer.Option(
            "--batch-size",
            **_bounds("batch_size"),
            help=f"Images per step, split across --processes {_recipes_default('batch_size')}.",
        ),
    ] = None,
    lr: Annotated[
        Optional[float],
        typer.Option(
            "--lr",
            **_bounds("lr"),
            help=f"Adam's peak learning rate (cosine decay to 5% of it) {_recipes_default('lr')}.",
        ),
    ] = None,
    lr_decay: Annotated[
        Optional[bool],
        typer.Option(
            "--lr-decay/--no-lr-decay",
            help=f"Cosine-decay the learning rate over the run {_recipes_default('lr_decay')}.",
        ),
    ] = None,
    beta1: Annotated[
        Optional[float],
        typer.Option(
            "--beta1",
            **_bounds("beta1"),
            help=f"Adam's beta1 (the tutorial uses 0.5) {_recipes_default('beta1')}.",
        ),
    ] = None,
    limit: Annotated[
        Optional[int],
        typer.Option(
            "--limit",
            **_bounds("limit"),
            help="Train on the first N images only (of every class in turn, for an ImageFolder).",
        ),
    ] = None,
    indices: Annotated[
        Optional[str],
        typer.Option(
            "--indices",
            metavar="INDICES",
            help="Train on these training images only, e.g. 5,25 (the tutorial's one- and two-image experiments).",
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            **_bounds("seed"),
            help="Seed for initialisation, shuffling and noise.",
        ),
    ] = TrainOptions.seed,
    eval_every: Annotated[
        int,
        typer.Option(
            "--eval-every",
            **_bounds("eval_every"),
            help="Evaluate on the test set every N epochs (and after the last).",
        ),
    ] = TrainOptions.eval_every,
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
            metavar="NAMES",
            help=(
                "Names of the labels, in order, for another 28x28 IDX dataset (e.g. Fashion-MNIST: "
                '"T-shirt/top,Trouser,...") [default: 0, 1, ...].'
            ),
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its last finished epoch.")
    ] = False,
    distributed: Annotated[
        bool,
        typer.Option(
            "--distributed",
            help=(
                "Require a data-parallel launch (python -m paddle.distributed.launch ... mnistgen train); launched "
                "runs are data-parallel anyway."
            ),
        ),
    ] = False,
    processes: Annotated[
        Optional[int],
        typer.Option(
            "--processes",
            min=1,
            max=MAX_PROCESSES,
            help=(
                "Data-parallel processes on this machine, each on --batch-size/N images per step (the global batch "
                "and loss curve stay those of one process); 1 for one process [default: the usable CPUs, at most "
                "one per 16 images of the batch; on --resume, the run's own]."
            ),
        ),
    ] = None,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
) -> None:
    """Train a VAE, CVAE or classifier on MNIST or your own labelled images (an ImageFolder, .h5/.npz);
    writes checkpoints, metrics.jsonl and sample grids to --out (a CVAE also its companion classifier).

    \b
    Example: mnistgen train --model cvae --data my-digits/ --out runs/mine
    """
    chosen = parse_int_list(indices, "--indices") if indices is not None else None
    names = parse_names(class_names, "--class-names", '"T-shirt/top,Trouser,..."') if class_names is not None else []
    try:
        model = TrainKind(train_kind(model and model.value, recipe))
    except MnistgenError as exc:
        raise typer.BadParameter(str(exc), param_hint="--model/--recipe") from None
    out = out or Path("runs") / run_name(model.value, latent, recipe)
    rank, world = launched_world()
    if distributed and world < 2:
        raise typer.BadParameter(
            "start data-parallel training with: python -m paddle.distributed.launch --nproc_per_node N "
            '"$(which mnistgen)" train ...',
            param_hint="--distributed",
        )
    if (arch is not ClassifierArch.lenet or augment is not Augment.auto) and model is not TrainKind.classifier:
        raise typer.BadParameter(
            "--arch and --augment shape a classifier's training: add --model classifier", param_hint="--arch/--augment"
        )
    if world > 1 and model is TrainKind.classifier:
        raise typer.BadParameter(
            "the classifier trains on one process: drop the distributed launch", param_hint="--model"
        )
    from mnistgen import parallel

    batch_size = batch_size or Recipe.batch_size  # every recipe's batch; launched ranks split it
    if processes and processes > 1 and model is TrainKind.classifier:
        raise typer.BadParameter("the classifier trains on one process: drop --processes", param_hint="--processes")
    if world == 1 and not distributed and model is not TrainKind.classifier:
        with _user_errors(f"kept the last finished epoch in {out}; continue with --resume"):
            count = parallel.choose(processes, batch_size, device.value, out, resume, chosen, limit)
            if count > 1:
                line = command_line(ctx, model=model)
                raise typer.Exit(parallel.run(shlex.split(line)[1:], count, data, download, model.value))
    elif parallel.launched_by_mnistgen():  # a rank that `mnistgen train` started: --batch-size is the global batch
        parallel.watch_parent()
        batch_size = parallel.per_process_batch(batch_size, world)
    quiet = quiet or rank != 0  # one progress bar, from rank 0
    command = command_line(ctx, model=model)  # the kind trained, whether given or the recipe's
    given = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "command": command}
    if model is TrainKind.classifier:
        given.update(eval_every=eval_every, augment=augment.value, arch=arch.value, channels=channels)
    else:
        given.update(latent=latent, channels=channels, likelihood=likelihood.value if likelihood else None)
        given.update(beta1=beta1, lr_decay=lr_decay, kl_warmup=kl_warmup, eval_every=eval_every, shift=shift)
        given.update(companion=companion)
    ranks = f" on {world} processes" if world > 1 else ""
    with _user_errors(f"kept the last finished epoch in {out}; continue with --resume"):
        from mnistgen import api

        init_distributed()
        where = f"{select_device(device)}{ranks}, into {out}"  # a device refused here: before any progress bar
        started = time.perf_counter()
        with _TrainProgress(quiet, None if quiet else where, tested=test is not None) as bar:
            if model is TrainKind.classifier:
                callback = (lambda metrics: None) if quiet else _classifier_epoch
            else:
                callback = bar
            metrics = api.fit(
                data,
                out,
                model.value,
                recipe,
                limit=limit,
                indices=chosen,
                test=test,
                class_names=names,
                download=download and rank == 0,
                resume=resume,
                device=device,
                callback=callback,
                on_note=None if quiet else (lambda note: _stderr(f"note: {note}")),
                rank=rank,
                world=world,
                **given,
            )
        if rank == 0:
            seconds = round(time.perf_counter() - started, 1)
            _emit(
                {
                    **metrics,
                    "run": str(out),
                    "model": str(out / "model.safetensors"),
                    "seconds_total": seconds,
                    "processes": world,
                }
            )


def _classifier_epoch(metrics: dict) -> None:
    test = f"test accuracy {metrics['test_accuracy']:.4f}" if "test_accuracy" in metrics else "no test evaluation"
    _stderr(f"epoch {metrics['epoch']}: loss {metrics['train_loss']:.4f}, {test}, {metrics['seconds']:.0f} s")


# -- generate -----------------------------------------------------------------------------------


def parse_shard(text: Optional[str]):
    """`i/n` (0-based) -> Shard."""
    from mnistgen.sample import Shard

    if text is None:
        return Shard(0, 1)
    index, slash, count = text.partition("/")
    index, count = parse_natural(index, "--shard"), parse_natural(count, "--shard")
    if not slash or index is None or count is None:
        raise typer.BadParameter(
            f"{text!r} is not i/n: job i of n, counting from 0 (e.g. 0/4 ... 3/4)", param_hint="--shard"
        )
    if count < 1 or index >= count:
        raise typer.BadParameter(
            f"{text!r}: need 0 <= i < n, counting from 0 (e.g. 0/{max(count, 2)} ... "
            f"{max(count, 2) - 1}/{max(count, 2)})",
            param_hint="--shard",
        )
    return Shard(index, count)


@app.command()
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
    temperature: Annotated[
        Optional[float],
        typer.Option(
            "--temperature",
            "-t",
            min=SETTING_RANGES["temperature"].low,
            max=SETTING_RANGES["temperature"].high,
            help=(
                "Scale of the prior's standard deviation (below 1: cleaner, less varied digits) [default: the "
                "model card's recommendation, else 1]."
            ),
        ),
    ] = None,
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
                "faster, pixels within a few levels), else fp32. A GPU decodes in fp32."
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
    if threads is not None:
        os.environ[THREADS_ENV] = str(threads)
    with _user_errors(_generate_interrupted(Path(out), fmt, force and shard is None)):
        from mnistgen import generate as gen  # no Paddle: the whole request is checked before it loads
        from mnistgen import records, sample

        seed = records.choose_seed(out, fmt, chosen_shard, resume) if seed is None else seed
        weights = _check_model(model)
        if min_confidence and classifier:  # asked for: an unknown --classifier is a usage error
            _check_classifiers(classifier)
        if class_ is not None:
            labels = sample.labels_for(weights, sample.resolve_classes(weights, class_), "--class")
        else:
            labels = sample.labels_for(weights, digits)
        spec = sample.resolve_sampling(
            weights,
            prior=prior.value,
            temperature=temperature,
            truncation=truncation,
            sharpen=sharpen,
            min_confidence=min_confidence,
            classifier=classifier,
            precision=precision.value,
        )
        command = command_line(ctx, seed=seed)  # the seed used, given or not: repeating the line repeats the run
        job = gen.plan_job(weights, labels, count, out, seed, fmt, spec, chosen_shard, force, resume, scale, command)
        if note := gen.empty_note(job):
            _stderr(f"note: {note}")
        if job.streams and sys.stdout.isatty():
            raise MnistgenError(
                "--out - would write a binary tar to the terminal: give --out FILE, or pipe it "
                "(mnistgen generate ... --out - | tar -t)"
            )
        from mnistgen import api, predictor

        sampler = api.Model(weights, device).sampler(spec)  # loads, exports and checks before the bar starts
        if note := predictor.decoder_note(sampler.decoder):
            _stderr(f"note: {note}")  # printed even with --quiet: the job runs, but slower than it should
        if not quiet and class_ is None and (note := sample.digits_note(weights, digits)):
            _stderr(f"note: {note}")  # after every check: a refusal stays one line
        with _progress(quiet) as progress, _data_stdout(job.streams) as stream:
            task = progress.add_task("generating", total=job.size, info="")

            def show(done: int, rate: float, acceptance: float) -> None:
                rejected = f"  {1 - acceptance:5.1%} rejected" if spec.verified else ""
                progress.update(task, completed=done, info=f"{rate:6.0f} img/s{rejected}")

            summary = gen.run_job(job, sampler, show, stream)
        _emit(summary, err=job.streams)


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
    data = os.fdopen(os.dup(fd), "wb") if fd is not None else saved.buffer
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
    finally:
        sys.stdout = saved
        if fd is not None:
            os.dup2(kept, fd)
            os.close(kept)
            with contextlib.suppress(OSError):
                data.close()


# -- interpolate --------------------------------------------------------------------------------


class WalkOutput(str, Enum):
    gif = "gif"
    png = "png"
    frames = "frames"


class Method(str, Enum):
    lerp = "lerp"
    slerp = "slerp"


MAX_LATENT_COORD = 1_000_000  # the largest latent coordinate --points, --bounds and --sigma take (a prior's: about 3)


DEFAULT_WALK_OUT = {
    WalkOutput.gif: Path("interpolate.gif"),
    WalkOutput.png: Path("interpolate.png"),
    WalkOutput.frames: Path("interpolate_frames"),
}


def parse_coordinates(text: str, option: str) -> Optional[list[float]]:
    """`1,-2.5` -> floats, None if one is not a number; a number that is no latent coordinate
    (nan, inf, 1e999, beyond +-MAX_LATENT_COORD) is a usage error."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        return None
    bad = [v for v in values if not abs(v) <= MAX_LATENT_COORD]  # nan fails every comparison
    if bad:
        raise typer.BadParameter(
            f"{text!r}: {bad[0]} is not a latent coordinate: use finite numbers from -{MAX_LATENT_COORD} to "
            f"{MAX_LATENT_COORD}",
            param_hint=option,
        )
    return values


def parse_points(text: str) -> list[list[float]]:
    """`x1,y1;x2,y2;...` -> list of coordinate lists (at least two points)."""
    points = [parse_coordinates(part, "--points") for part in text.split(";") if part.strip()]
    if len(points) < 2 or None in points or len({len(p) for p in points}) != 1:
        raise typer.BadParameter(
            f'{text!r} is not a list of at least two points like "x1,y1;x2,y2" with the same number of coordinates '
            "each",
            param_hint="--points",
        )
    return points


def parse_floats(text: str, count: int, option: str, example: str) -> list[float]:
    values = parse_coordinates(text, option) or []
    if len(values) != count:
        raise typer.BadParameter(f"{text!r}: give {count} comma-separated numbers, e.g. {example}", param_hint=option)
    return values


def _check_picture_size(loaded, scale: int, grid, digit, steps: int, loop: bool, anchors, found, to: str):
    """Before anything is decoded: refuse a grid or walk (written as `to`) that would not fit in
    memory (`found`: the --images, read)."""
    from mnistgen import explore

    if grid is not None:
        need = explore.grid_bytes(grid, explore.grid_panels(loaded.config, digit), scale)
        explore.check_memory(need, f"--grid {grid} at --scale {scale}", "use a smaller --grid or --scale")
        return
    if found is not None:
        anchors = found.images
    frames = explore.frame_count(len(anchors) if anchors is not None else loaded.config.num_classes, steps, loop)
    explore.check_memory(
        explore.walk_bytes(loaded.weights, frames, scale, to),
        f"a walk of {frames:,} frames at --scale {scale}",
        "use fewer --steps or points to walk through, or a smaller --scale",
    )


@app.command()
def interpolate(
    to: Annotated[
        Optional[WalkOutput],
        typer.Option(
            "--to",
            help=(
                "gif: an animation; png: a strip, one frame per column; frames: a folder of PNGs [default: gif; "
                "--grid draws a png]."
            ),
        ),
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            "-o",
            help=(
                "Output file or folder [default: interpolate.gif / .png / interpolate_frames/, or grid.png with "
                "--grid]."
            ),
        ),
    ] = None,
    digits: Annotated[
        Optional[str],
        typer.Option(
            "--digits",
            metavar="LABELS",
            help=(
                "A path through digits, e.g. 3,8 (CVAE: the label morphs at a fixed z; VAE: class centroids) "
                "[default: 0,1,...,9]."
            ),
        ),
    ] = None,
    images: Annotated[
        Optional[str],
        typer.Option(
            "--images", metavar="PATHS", help="Walk between the encoder means of these images, e.g. a.png,b.png."
        ),
    ] = None,
    points: Annotated[
        Optional[str],
        typer.Option(
            "--points", metavar="POINTS", help='Walk through latent points, e.g. "-2,0;2,0" (several make a path).'
        ),
    ] = None,
    digit: Annotated[
        Optional[str],
        typer.Option(
            "--digit",
            "-d",
            metavar="LABEL",
            help="CVAE label for --points, --images without labels, or --grid: an index or a class name, e.g. 2.",
        ),
    ] = None,
    labels: Annotated[
        Optional[str],
        typer.Option(
            "--labels", metavar="LABELS", help="CVAE labels of the --images, e.g. 3,8 (replacing any they have)."
        ),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, max=1000, help="Frames per segment of the path.")] = 16,
    method: Annotated[
        Method,
        typer.Option(
            "--method",
            help=(
                "lerp: straight lines; slerp: great circles, the radius moving evenly between the points' "
                "(opposite points: through the axis least aligned with the first)."
            ),
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
            min=MIN_GRID,
            max=100,
            help=(
                "Instead of a path: decode an N x N grid over two latent dimensions into one PNG (the tutorial's "
                "manifold)."
            ),
        ),
    ] = None,
    dims: Annotated[
        str, typer.Option("--dims", metavar="I,J", help="The two latent dimensions the grid sweeps (others stay 0).")
    ] = "0,1",
    bounds: Annotated[
        Optional[str],
        typer.Option(
            "--bounds",
            metavar="X1,X2,Y1,Y2",
            help=(
                "Grid range x1,x2,y1,y2 [default: the range of the encoder means on the training data, from the "
                "model card]."
            ),
        ),
    ] = None,
    sigma: Annotated[
        Optional[float],
        typer.Option(
            "--sigma",
            min=0.0,
            max=MAX_LATENT_COORD,
            help="Grid range: +-K standard deviations of the prior instead of the data range.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing --out file, or the frames in an --out folder.")
    ] = False,
    model: ModelOption = DEFAULT_PICTURES,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
) -> None:
    """Decode a walk through latent space to a GIF, a PNG strip or frames; or, with --grid, the 2-D manifold.

    \b
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
    chosen_digits = parse_labels(digits, "--digits") if digits is not None else None
    digit = parse_label(digit, "--digit") if digit is not None else None
    chosen_points = parse_points(points) if points is not None else None
    chosen_labels = parse_labels(labels, "--labels") if labels is not None else None
    grid_dims = tuple(parse_int_list(dims, "--dims"))
    if len(grid_dims) != 2:
        raise typer.BadParameter(f"{dims!r}: give two latent dimensions, e.g. 0,1", param_hint="--dims")
    grid_bounds = parse_floats(bounds, 4, "--bounds", "-3,3,-3,3") if bounds is not None else None
    image_paths = [Path(p.strip()) for p in images.split(",")] if images is not None else None
    if grid is not None and to not in (None, WalkOutput.png):
        raise typer.BadParameter(f"--grid draws one PNG picture: drop --to {to.value}", param_hint="--to")
    to = WalkOutput.png if grid is not None else to or WalkOutput.gif
    named = Path("grid.png") if grid is not None else DEFAULT_WALK_OUT[to]
    out = out or named
    with _user_errors("nothing was left half-written"):
        from mnistgen import atomic, export, outputs  # no Paddle

        if str(out) == outputs.STDOUT:
            kind = "a folder" if to is WalkOutput.frames else f"a .{to.value} file"
            raise MnistgenError(f"--out -: interpolate writes files, not standard output; name {kind}, such as {named}")
        atomic.check_apart({"--out": out}, image_paths or [])
        export.check_walk_out(out, to.value, force)
        from mnistgen import api, explore  # Paddle: only once the output is known to be writable

        weights = _check_model(model)
        loaded = api.Model(weights, device)
        anchors = chosen_digits or chosen_points
        explore.check_unlabelled_walk(weights, digit, chosen_labels)  # before --labels is counted against images
        found = loaded.read(image_paths, chosen_labels) if image_paths is not None else None  # read once
        for note in [] if quiet or found is None else found.notes:
            _stderr(f"note: {note}")
        _check_picture_size(loaded, scale, grid, digit, steps, loop, anchors, found, to.value)
        if grid is not None:
            picture, spec = loaded.grid(grid, grid_dims, digit, grid_bounds, sigma)  # checks --dims first
            if weights.config.latent > 2 and not quiet:
                _stderr(
                    f"note: the latent has {weights.config.latent} dimensions; the grid sweeps "
                    f"{grid_dims[0]} and {grid_dims[1]}, the others are 0"
                )
            export.write_png(out, export.upscale(picture, scale))
            panels = explore.grid_panels(weights.config, digit)
            _emit(
                {
                    "grid": grid,
                    "panels": panels,
                    "out": str(out),
                    "x": list(spec.x),
                    "y": list(spec.y),
                    "dims": list(grid_dims),
                    "model": weights.name,
                }
            )
            return
        frames = loaded.interpolate(
            chosen_digits, chosen_points, digit, steps, method.value, loop, seed, found, chosen_labels
        )
        export.write_walk(out, export.upscale(frames, scale), to.value, fps, loop)
        _emit({"frames": len(frames), "out": str(out), "to": to.value, "model": weights.name})


# -- encode -------------------------------------------------------------------------------------

RECON_COLUMNS = 16  # images shown in a --reconstruct figure


@app.command(cls=_Command)
def encode(
    sources_: Annotated[
        list[Path],
        typer.Argument(
            metavar="SOURCES",
            help=(
                "PNG files, folders of them (ImageFolder layout gives labels), an IDX images file, an HDF5 file "
                "from generate, or the tutorial's .mat."
            ),
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
            metavar="LABELS",
            help=(
                "CVAE: the label of every image (one digit) or of each image (a comma list); it replaces any labels "
                "the source has (e.g. to encode 7s as 3s)."
            ),
        ),
    ] = None,
    plot: Annotated[
        Optional[Path],
        typer.Option(
            "--plot",
            help=(
                "Also draw the tutorial's scatter plots of means and standard deviations (dimensions 0 and 1) to "
                "this PNG."
            ),
        ),
    ] = None,
    reconstruct: Annotated[
        Optional[Path],
        typer.Option("--reconstruct", help="Also write the first 16 inputs above their reconstructions to this PNG."),
    ] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Encode only the first N images.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace existing --out, --plot and --reconstruct files.")
    ] = False,
    model: ModelOption = DEFAULT_PICTURES,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
) -> None:
    """Encode images to latent means and standard deviations (CSV on stdout by default).

    \b
    Example: mnistgen encode synth/ --model cvae-2d --plot latent.png > latents.csv
    """
    chosen_labels = parse_labels(labels, "--labels") if labels is not None else None
    if out is not None and out.suffix.lower() not in (".npy", ".csv", ".h5", ".hdf5"):
        raise typer.BadParameter(f"{out}: use a name ending in .npy, .csv or .h5", param_hint="--out")
    with _user_errors("nothing was left half-written"):
        import numpy as np

        from mnistgen import atomic, export

        outputs = {"--out": out, "--plot": plot, "--reconstruct": reconstruct}
        atomic.check_apart(outputs, sources_)
        atomic.check_new_files(outputs, force)
        if plot is not None:
            export.check_plotting()
        from mnistgen import api  # Paddle: only once the outputs are known to be writable

        weights = _check_model(model)
        if plot is not None:
            export.check_latent_scatter(weights.config.latent, weights.name)
            if weights.config.latent > export.SCATTER_DIMS and not quiet:
                _stderr(f"note: the latent has {weights.config.latent} dimensions; --plot draws dimensions 0 and 1")
        loaded = api.Model(weights, device)
        found = loaded.read(sources_, chosen_labels, limit)
        if not quiet:
            for note in found.notes:
                _stderr(f"note: {note}")
        means, stds = loaded.encode(found.images, found.labels)
        if plot is not None:
            export.write_latent_scatter(plot, means, stds, found.labels, loaded.name)
        if reconstruct is not None:
            shown = slice(0, RECON_COLUMNS)
            rebuilt = loaded.reconstruct(found.images[shown], None if found.labels is None else found.labels[shown])
            export.write_png(reconstruct, export.upscale(export.tile(np.stack([found.images[shown], rebuilt])), 2))
        if out is None:
            _write_result(export.latents_csv(found.names, found.labels, means, stds), data="the CSV")
        else:
            provenance = {"model": loaded.name, "model_sha256": loaded.sha256, "mnistgen_version": __version__}
            export.write_latents(out, found.names, found.labels, means, stds, provenance)
            _emit({"count": len(means), "out": str(out), "model": loaded.name})


# -- evaluate -------------------------------------------------------------------------------------


@app.command()
def evaluate(
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model",
            "-m",
            metavar="NAME|PATH",
            help="Generator to score (name or path) [default: cvae, unless --images is given].",
        ),
    ] = None,
    images: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--images",
            metavar="PATH",
            help=(
                "Score these images instead of a model's samples: a folder (ImageFolder layout), an HDF5/IDX file "
                "from any tool."
            ),
        ),
    ] = None,
    count: Annotated[int, typer.Option("--count", "-n", min=10, max=100_000, help="Samples per digit.")] = 1000,
    classifier: Annotated[
        Optional[str],
        typer.Option(
            "--classifier",
            metavar="NAMES",
            help="The verifier --min-confidence filters with; several, comma-separated, must all agree [default: "
            "the model card's verifier (its companion classifier), else classifier].",
        ),
    ] = None,
    judge_name: Annotated[
        str,
        typer.Option(
            "--judge",
            metavar="NAME|PATH",
            help="The independent classifier that grades (accuracy, FID features, TSTR); never the verifier.",
        ),
    ] = DEFAULT_JUDGE,
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
    augment: Annotated[
        Optional[Path],
        typer.Option(
            "--augment",
            exists=True,
            help=(
                "A labelled set in any form train --data takes: train the classifier on it alone and on it plus the "
                "generated images (--model/--count, or --images), the same steps on each --seeds; report both "
                "test accuracies and the gain."
            ),
        ),
    ] = None,
    limit: Annotated[
        Optional[int],
        typer.Option(
            "--limit",
            **_bounds("limit", EVALUATE_RANGES),
            help="--augment: use the first N images of the set only (of every class in turn).",
        ),
    ] = None,
    seeds: Annotated[
        str,
        typer.Option(
            "--seeds", metavar="SEEDS", help="--augment: classifier seeds, comma-separated (at least 2 for a spread)."
        ),
    ] = "0,1",
    steps: Annotated[
        int,
        typer.Option(
            "--steps",
            **_bounds("steps", EVALUATE_RANGES),
            help="--augment: optimisation steps (batches of 64) per training.",
        ),
    ] = 500,
    test: Annotated[
        Optional[Path],
        typer.Option(
            "--test", exists=True, help="A labelled test set in any form --data takes [default: --data's test split]."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed for the samples.")] = 0,
    temperature: Annotated[
        Optional[float],
        typer.Option(
            "--temperature",
            "-t",
            min=SETTING_RANGES["temperature"].low,
            max=SETTING_RANGES["temperature"].high,
            help="Prior scale for the samples [default: the model card's recommendation, else 1].",
        ),
    ] = None,
    sharpen: SharpenOption = None,
    truncation: TruncationOption = None,
    min_confidence: MinConfidenceOption = None,
    prior: Annotated[
        PriorKind, typer.Option("--prior", help="Prior for the samples, as in generate.")
    ] = PriorKind.auto,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
) -> None:
    """Score a generator: test-set loss, classifier accuracy and confidence on its samples, FID, TSTR.

    \b
    Example: mnistgen evaluate --model cvae-2d --count 1000 --data ../shared/data/mnist
    """
    if model is not None and images:
        raise typer.BadParameter("score a --model or --images, not both", param_hint="--model/--images")
    chosen_seeds = parse_int_list(seeds, "--seeds")
    if augment is None and limit is not None:
        raise typer.BadParameter("--limit chooses images of the --augment set: pass --augment", param_hint="--limit")
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
    with _user_errors("nothing was written", os_fix="check that the inputs exist and can be read"):
        from mnistgen import api

        if classifier is not None:
            _check_classifiers(classifier)
        _check_model(judge_name, "--judge")
        if not images:
            _check_model(model or DEFAULT_GENERATOR)
        options = (
            {}
            if images
            else {
                "prior": prior.value,
                "temperature": temperature,
                "sharpen": sharpen,
                "truncation": truncation,
                "min_confidence": min_confidence,
            }
        )
        with _StageProgress(quiet) as on_progress:
            report = api.evaluate(
                model,
                images,
                count,
                seed,
                data,
                classifier,
                judge_name,
                tstr,
                device,
                augment,
                limit,
                chosen_seeds,
                steps,
                test,
                on_progress=on_progress,
                **options,
            )
        if not quiet:
            for note in [*report.get("notes", []), report.get("verifier_note")]:
                if note:
                    _stderr(f"note: {note}")
            _evaluation_table(report)
        _emit(report)


class _StageProgress(contextlib.ExitStack):
    """Bridges evaluate's on_progress(stage, done, total) to a rich bar (a null one with --quiet): a
    line per stage, kept when the next starts. The bar starts with the first stage, so a refusal
    before any work is one error line."""

    def __init__(self, quiet: bool):
        super().__init__()
        self.quiet, self.progress, self.stage, self.task = quiet, None, None, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.progress is None:
            self.progress = self.enter_context(_progress(self.quiet))
        if stage != self.stage:
            self.stage, self.task = stage, self.progress.add_task(stage, total=total, info="")
        self.progress.update(self.task, completed=done, total=total)


def _evaluation_table(report: dict) -> None:
    """The report on stderr; labels by the judge's class names (an own-data judge's), else by number."""
    from rich.console import Console
    from rich.table import Table

    names = report["classes"]
    named = names != [str(i) for i in range(len(names))]
    table = Table("measure", "value", title=f"mnistgen evaluate: {report.get('model', 'images')}")
    for key, value in report.get("test_set", {}).items():
        table.add_row(f"test set {key.replace('test_', '')} (per image)", f"{value:.2f}")
    scores = report["samples"]
    table.add_row("samples", str(scores["images"]))
    table.add_row(f"judge on test images ({report['judge']})", f"{report['judge_test_accuracy']:.2%}")
    if "accuracy" in scores:
        table.add_row(f"judge accuracy ({report['judge']})", f"{scores['accuracy']:.2%}")
        per_label = scores["accuracy_per_label"].items()  # the judge's, so under its row
        table.add_row("  per label (judge)", "  ".join(f"{names[int(d)]}:{a:.1%}" for d, a in per_label))
        if "verifier" in scores:
            table.add_row(f"verifier accuracy ({report['verifier']})", f"{scores['verifier']['accuracy']:.2%}")
    table.add_row("mean confidence", f"{scores['mean_confidence']:.3f}")
    counts = zip(names, scores["class_histogram"])
    table.add_row("predicted classes", " ".join(f"{n}:{v}" if named else str(v) for n, v in counts))
    fid = scores["fid"]
    table.add_row("judge-feature FID", f"{fid:.2f}" if fid is not None else "- (too few images)")
    if "tstr" in report:
        t = report["tstr"]
        table.add_row(
            f"TSTR ({t['train_images']} images, {t['epochs']} epochs)",
            f"synthetic {t['synthetic_accuracy']:.2%} vs real {t['real_accuracy']:.2%}",
        )
    if "augment" in report:
        a = report["augment"]
        where = f"{a['real_images']} real + {a['generated_images']} generated, {a['steps']} steps, seeds {a['seeds']}"
        table.add_row("augment: real alone", f"{a['real_accuracy']:.2%}")
        table.add_row(f"augment: real + generated ({where})", f"{a['augmented_accuracy']:.2%}")
        table.add_row(
            "augment: gain (points)",
            f"{100 * a['gain']:+.2f} (min {100 * a['gain_min']:+.2f}, max {100 * a['gain_max']:+.2f})",
        )
        copies = a["nearest_training_image"]
        table.add_row("near-copies of training images", f"{copies['near_copies']} ({copies['near_copy_rate']:.2%})")
    Console(stderr=True).print(table)
    if report["judge_test_accuracy"] < TRUSTED_JUDGE:
        _stderr(
            f"note: the judge {report['judge']} reads only {report['judge_test_accuracy']:.1%} of the real test images "
            "right, so its grades of the samples are no better: train it longer (train --model classifier --epochs N)"
        )


# -- models and cache ---------------------------------------------------------------------------

models_app = typer.Typer(rich_markup_mode=None)
app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
def models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per model instead of a table.")] = False,
) -> None:
    """List every model found by name (shipped, and in $MNISTGEN_WEIGHTS); `models show NAME` prints one card.

    \b
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
        from rich.table import Column, Table

        name = Column("name", no_wrap=True)  # what --model takes: never cut short
        table = Table(name, "kind", "latent", "epochs", "test loss", "sha256", "where")
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
        _show_result(table)


@models_app.command("show", cls=_Command)
def models_show(name: Annotated[str, typer.Argument(metavar="NAME|PATH", help="A model name or path.")]) -> None:
    """Print a model's card (JSON).

    \b
    Example: mnistgen models show cvae-2d
    """
    with _user_errors():
        weights = _check_model(name, "NAME")
        _write_result(json.dumps({**weights.card, "path": str(weights.path)}, indent=2) + "\n")


@app.command()
def doctor(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON on stdout instead of a table.")
    ] = False,
) -> None:
    """Check this installation: versions, CPU and GPU, cache, shipped weights, then a short self-test.

    \b
    Example: mnistgen doctor --json
    """
    with _user_errors():
        from mnistgen import doctor as doctor_lib

        report = doctor_lib.diagnose(on_step=lambda step: None if as_json else _stderr(f"doctor: {step}..."))
        if as_json:
            _write_result(json.dumps(report, indent=1) + "\n")
        else:
            _doctor_table(report)
        failed = doctor_lib.failures(report)
        if failed:
            raise MnistgenError(f"{failed[0]['check']}: {failed[0]['detail']}; {failed[0]['fix']}")


def _doctor_table(report: dict) -> None:
    from rich.table import Table

    env = Table("environment", "value", title="mnistgen doctor")
    for key, value in report["environment"].items():
        env.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    checks = Table("check", "status", "detail", "fix")
    colour = {"ok": "green", "warn": "yellow", "fail": "red"}
    for row in report["checks"]:
        status = f"[{colour[row['status']]}]{row['status']}[/{colour[row['status']]}]"
        checks.add_row(row["check"], status, row["detail"], row.get("fix", ""))
    _show_result(env, checks)  # the report is the result: `mnistgen doctor > report.txt` keeps it


cache_app = typer.Typer(rich_markup_mode=None)
app.add_typer(cache_app, name="cache")


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _cache_entries(root: Path) -> list[Path]:
    """The folders mnistgen makes in the cache root - the MNIST download and the exported
    predictors - that are there. Nothing else in the root is listed or removed: it may be the user's."""
    from mnistgen.data import MNIST_SUBDIR
    from mnistgen.predictor import INFERENCE_SUBDIR

    if root.exists() and not root.is_dir():
        raise MnistgenError(f"the cache {root} is a file, not a folder: set $MNISTGEN_DATA to a folder")
    return [root / name for name in (MNIST_SUBDIR, INFERENCE_SUBDIR) if (root / name).is_dir()]


def _entry_size(path: Path) -> int:
    return 0 if path.is_symlink() else _tree_size(path)  # a link to the user's folder: only the link goes


@cache_app.callback(invoke_without_command=True)
def cache(ctx: typer.Context) -> None:
    """Show the cache ($MNISTGEN_DATA, default ~/.cache/mnistgen: downloads, exported decoders).

    `mnistgen cache clear` removes them; other files in the folder are left alone.

    \b
    Example: mnistgen cache
    """
    if ctx.invoked_subcommand is not None:
        return
    from mnistgen.data import cache_dir

    root = cache_dir()
    with _user_errors():
        entries = {p.name: _entry_size(p) for p in _cache_entries(root)}
    _emit({"cache": str(root), "bytes": sum(entries.values()), "entries": entries})


@cache_app.command("clear")
def cache_clear() -> None:
    """Delete what mnistgen cached: the MNIST download and exported inference models (they are made
    again when needed). Other files in the cache folder are left alone.

    \b
    Example: mnistgen cache clear
    """
    from mnistgen.data import cache_dir

    root = cache_dir()
    removed, freed = [], 0
    with _user_errors("the cache may be partly cleared; run it again", os_fix="check the cache folder's permissions"):
        for entry in _cache_entries(root):
            size = _entry_size(entry)
            if entry.is_symlink():
                entry.unlink()
            else:
                shutil.rmtree(entry)
            removed, freed = [*removed, entry.name], freed + size
        if removed and not any(root.iterdir()):
            root.rmdir()  # it held mnistgen's folders only
    _emit({"cleared": str(root), "removed": removed, "bytes": freed})


def main() -> None:
    """Console-script entry point. SIGTERM (timeout, Slurm's time limit, docker stop) unwinds as
    Ctrl-C does: partial files are removed, one line says what is on disk, exit 143. Both are held
    until the command's work starts (runtime.hold_signals). Once the command has ended they end the
    process as by default, silently: Python's exit (Paddle's atexit work) is no place for a traceback."""
    hold_signals()
    signal.signal(signal.SIGTERM, terminate)
    try:
        app()
    except MnistgenError as exc:  # raised while parsing (e.g. a damaged --model file)
        _stderr(f"Error: {exc}")
        sys.exit(EXIT_ERROR)
    except _ReaderGone:
        with contextlib.suppress(OSError, ValueError):  # Python's exit flushes stdout: into nothing now
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_READER_GONE)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        release_signals()
