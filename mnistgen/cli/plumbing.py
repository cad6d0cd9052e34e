"""What every command shares on its way out: its result on stdout (written whole, or an error that
says why not), notes on stderr, and user_errors, around every command's work, where library errors,
Ctrl-C and SIGTERM become one `Error: ...` or `Interrupted: ...` line and the documented exit codes
(see mnistgen.cli; its main() catches what escapes while the arguments are parsed).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import shutil
import sys
from typing import Optional

import typer

from mnistgen.errors import MnistgenError
from mnistgen.runtime import MEMORY_ENV, import_numpy, release_signals

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
EXIT_READER_GONE = 128 + 13  # SIGPIPE's number: the status of a Unix tool ended by a closed pipe (`| head`)
INTERRUPTED_NOTE = "stopped; every file already written is complete"
OS_FIX = "free space or choose another --out (partial files were removed)"  # a failed write's fix, by default
READ_ERRNOS = (errno.ENOENT, errno.EISDIR, errno.EIO)  # failures that come from reading, not writing


def interrupted(exc: KeyboardInterrupt, note: str = INTERRUPTED_NOTE) -> int:
    """The one `Interrupted:` line (an atomic.Interrupted's own note, which says what its held step left on
    disk, else `note`) and the exit code: 130 for Ctrl-C, 143 for SIGTERM (runtime.Terminated)."""
    from mnistgen import parallel

    if not parallel.launched_by_mnistgen():  # a rank train started: the launcher says it, once
        stderr(f"Interrupted: {getattr(exc, 'note', None) or note}.")
    return getattr(exc, "exit_code", EXIT_INTERRUPTED)


def stderr(message: str) -> None:
    typer.echo(message, err=True)


PIPED_WIDTH = 10_000  # a table written to a pipe or file keeps its natural width: no cell is cut short


class ReaderGone(Exception):
    """Standard output's reader went away (`| head`, `| true`) while a summary or listing was written:
    the command's work is done, so main() ends quietly with EXIT_READER_GONE, as a Unix tool would."""


def write_result(text: str, data: Optional[str] = None) -> None:
    """Write a command's result on stdout and flush it, so that a failed write is told here: a full disk
    is an Error; a reader that went away is ReaderGone after a summary or listing, an Error when the text
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
            raise ReaderGone() from None
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


def show_result(*tables) -> None:
    """Rich tables that are a command's result, on stdout (through write_result): the terminal's width,
    or unlimited when piped."""
    from rich.console import Console

    terminal = sys.stdout.isatty()
    width = shutil.get_terminal_size().columns if terminal else PIPED_WIDTH
    console = Console(file=_Capture(), force_terminal=terminal, width=width)  # rich writes nothing itself
    for table in tables:
        console.print(table)
    write_result(console.file.getvalue())


@contextlib.contextmanager
def user_errors(
    interrupted_note: str = INTERRUPTED_NOTE,
    os_fix: str = OS_FIX,
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
        stderr(f"Error: {exc}")
        raise typer.Exit(EXIT_ERROR) from None
    except KeyboardInterrupt as exc:
        raise typer.Exit(interrupted(exc, interrupted_note)) from None
    except MemoryError:  # a limit the memory budget does not see (ulimit -v): partial files were removed
        stderr(
            "Error: out of memory: ask for less at once (fewer images or frames, a smaller --scale), or set "
            f"{MEMORY_ENV} to the memory this process may use, to be told before any work"
        )
        raise typer.Exit(EXIT_ERROR) from None
    except OSError as exc:  # disk full, file-size limit, permissions changed under us
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        reason = exc.strerror or " ".join(str(exc).split())  # one line, whatever the library put in it
        verb = "read" if exc.errno in READ_ERRNOS else "write"
        stderr(f"Error: cannot {verb}{where}: {reason}; {os_fix}")
        raise typer.Exit(EXIT_ERROR) from None


def emit(summary: dict, err: bool = False) -> None:
    """The one result line on stdout (on stderr when stdout carries data, err=True)."""
    if not err:
        write_result(json.dumps(summary) + "\n")
        return
    sys.stderr.write(json.dumps(summary) + "\n")
    sys.stderr.flush()
