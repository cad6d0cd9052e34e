"""The commands about this installation rather than a job: `models` (the weights found by name,
and one's card), `doctor` (versions, devices, cache, weights, a self-test) and `cache` (show, clear).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer

from mnistgen.cli.options import Command, refuse_unread
from mnistgen.cli.parsing import check_model
from mnistgen.cli.plumbing import emit, show_result, stderr, user_errors, write_result
from mnistgen.errors import MnistgenError

models_app = typer.Typer(rich_markup_mode=None)


@models_app.callback(invoke_without_command=True)
def models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per model instead of a table.")] = False,
) -> None:
    """List every model found by name (shipped, and in $MNISTGEN_WEIGHTS); `models show NAME` prints one card.

    \b
    Example: mnistgen models --json
    """
    showing = ctx.invoked_subcommand is not None
    refuse_unread(ctx, ((showing, ("as_json",), "{given} lists the models as JSON; models show prints JSON: drop it"),))
    if showing:
        return
    with user_errors():
        from mnistgen import api

        found = api.models()
        if as_json:
            for row in found:
                emit(row)
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
        show_result(table)


@models_app.command("show", cls=Command)
def models_show(name: Annotated[str, typer.Argument(metavar="NAME|PATH", help="A model name or path.")]) -> None:
    """Print a model's card (JSON).

    \b
    Example: mnistgen models show cvae-2d
    """
    with user_errors():
        weights = check_model(name, "NAME")
        write_result(json.dumps({**weights.card, "path": str(weights.path)}, indent=2) + "\n")


def doctor(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON on stdout instead of a table.")
    ] = False,
) -> None:
    """Check this installation: versions, CPU and GPU, cache, shipped weights, then a short self-test.

    \b
    Example: mnistgen doctor --json
    """
    with user_errors():
        from mnistgen import doctor as doctor_lib

        report = doctor_lib.diagnose(on_step=lambda step: None if as_json else stderr(f"doctor: {step}..."))
        if as_json:
            write_result(json.dumps(report, indent=1) + "\n")
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
    show_result(env, checks)  # the report is the result: `mnistgen doctor > report.txt` keeps it


cache_app = typer.Typer(rich_markup_mode=None)


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
    with user_errors():
        entries = {p.name: _entry_size(p) for p in _cache_entries(root)}
    emit({"cache": str(root), "bytes": sum(entries.values()), "entries": entries})


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
    with user_errors("the cache may be partly cleared; run it again", os_fix="check the cache folder's permissions"):
        for entry in _cache_entries(root):
            size = _entry_size(entry)
            if entry.is_symlink():
                entry.unlink()
            else:
                shutil.rmtree(entry)
            removed, freed = [*removed, entry.name], freed + size
        if removed and not any(root.iterdir()):
            root.rmdir()  # it held mnistgen's folders only
    emit({"cleared": str(root), "removed": removed, "bytes": freed})
