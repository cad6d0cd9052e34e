"""The `mnistgen` command line (Typer only): parse, validate, call the library, report.

Arguments are validated before Paddle is imported, so mistakes are reported at once and
`mnistgen --help` stays fast. `MnistgenError` becomes `Error: ...` on stderr with exit 1;
usage mistakes are Typer/Click usage errors with exit 2; Ctrl-C exits 130, SIGTERM 143; a reader of stdout
that goes away before a summary or listing is written (`| head`) exits 141, quietly. Progress goes to
stderr, results (one JSON line) to stdout.

This module holds the app, its root options and `main`, and registers the commands, a module each
(train, generate, interpolate, encode, evaluate; models, doctor and cache in installation) in the
order `mnistgen --help` lists them. What they share lies below them: options (shared option
declarations), parsing (option text to values), progress (bars and log lines), plumbing (results,
notes, errors and exit codes).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from mnistgen.cli import encode, evaluate, generate, installation, interpolate, train
from mnistgen.cli.options import Command
from mnistgen.cli.plumbing import EXIT_ERROR, EXIT_READER_GONE, ReaderGone, interrupted, stderr, write_result
from mnistgen.errors import MnistgenError
from mnistgen.runtime import hold_signals, release_signals, terminate
from mnistgen.version import __version__


class _Commands(TyperGroup):
    """The command group: a Ctrl-C or SIGTERM outside a command's user_errors (while its arguments are
    parsed, or as it returns) ends as inside one, where Typer would exit 130 without a word."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise typer.Exit(interrupted(exc)) from None


app = typer.Typer(
    name="mnistgen",  # its help is _root's docstring (a help= here would hide that docstring's example)
    cls=_Commands,
    no_args_is_help=True,
    rich_markup_mode=None,  # plain Click messages: one-line usage errors, no boxes
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        write_result(f"mnistgen {__version__}\n")
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


app.command()(train.train)
app.command()(generate.generate)
app.command()(interpolate.interpolate)
app.command(cls=Command)(encode.encode)
app.command()(evaluate.evaluate)
app.add_typer(installation.models_app, name="models")
app.command()(installation.doctor)
app.add_typer(installation.cache_app, name="cache")


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
        stderr(f"Error: {exc}")
        sys.exit(EXIT_ERROR)
    except ReaderGone:
        with contextlib.suppress(OSError, ValueError):  # Python's exit flushes stdout: into nothing now
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_READER_GONE)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        release_signals()
