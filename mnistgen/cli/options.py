"""The options several commands share (--device, --model, --quiet, the sampling settings), the
ranges Typer checks for train's and evaluate's numbers, how a command's arguments are shown in its
help, which options the user gave (not left at their defaults) and the refusal of those a request
would not read, and the explicit command line a run records.
"""

from __future__ import annotations

import shlex
from typing import Annotated, Optional

import typer

from mnistgen.config import SETTING_RANGES, TRAIN_RANGES
from mnistgen.runtime import Device


def bounds(key: str, ranges: dict = TRAIN_RANGES) -> dict:
    """An option's min and max for Typer, from config.TRAIN_RANGES or EVALUATE_RANGES (which mnistgen.fit
    and mnistgen.evaluate check too)."""
    _, low, high = ranges[key]
    return {"min": low, "max": high}


class Command(typer.core.TyperCommand):
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
TemperatureOption = Annotated[
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


def _given_params(ctx: typer.Context, names, resolved: Optional[dict] = None) -> list:
    """The parameters among `names` that the user gave a value of their own (see `given`)."""
    found = []
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name) if param.name in names else None
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):  # Typer's own click: compare by name
            continue
        value = getattr(ctx.params.get(param.name), "value", ctx.params.get(param.name))  # an enum's by its value
        if value not in (param.default, (resolved or {}).get(param.name, param.default)):
            found.append(param)
    return found


def given_names(ctx: typer.Context, names) -> set[str]:
    """The parameter names among `names` that the user gave a value of their own (`given`): what
    the user asked for, as opposed to what the command filled in (a default, a recipe's batch)."""
    return {param.name for param in _given_params(ctx, names)}


def given(ctx: typer.Context, names, resolved: Optional[dict] = None) -> list[str]:
    """The options among parameters `names` that the user gave a value of their own, as typed
    (--no-loop for a flag turned off): on the command line, with a value other than the default, or
    than what a None default resolves to (`resolved`, by parameter name). So `--steps 30` counts, and
    neither no --steps nor `--steps 16` (the default) does: a wrapper script that always passes the
    same options, and a command line an earlier version recorded with every option at its value,
    ask for nothing they will not get. For refusing an option the request would not read, rather
    than dropping it silently."""
    shown = []
    for param in _given_params(ctx, names, resolved):
        if ctx.params.get(param.name) is False and param.secondary_opts:
            shown.append(param.secondary_opts[0])  # --no-loop
        else:
            shown.append(next((o for o in param.opts if o.startswith("--")), param.opts[0]))
    return shown


def refuse_unread(ctx: typer.Context, table, resolved: Optional[dict] = None) -> None:
    """A usage error for the first option given a value of its own (`given`) that the request would
    not read, so that none seems to have had an effect. `table`: one row per case, (whether it
    applies, the parameter names it leaves unread, the message: {given} the options as typed, {them}
    "it" or "them")."""
    for applies, names, message in table:
        found = given(ctx, names, resolved) if applies else []
        if found:
            named = " and ".join([", ".join(found[:-1]), found[-1]] if len(found) > 1 else found)
            them = "it" if len(found) == 1 else "them"
            raise typer.BadParameter(message.format(given=named, them=them), param_hint="/".join(found))


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
