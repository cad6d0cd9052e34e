"""Option text to values, before Paddle is imported: integer, label and name lists, --class,
--shard, latent coordinates; and --model and --classifier resolved and checked for their role (an
unknown name is a usage error, exit 2).
"""

from __future__ import annotations

from typing import Optional

import typer

from mnistgen.config import ALL_LABELS, MAX_SEED
from mnistgen.errors import MnistgenError

MAX_OPTION_INT = MAX_SEED  # the largest number an integer-list option takes (--seeds); bounds every list
SHOWN_DIGITS = 20  # of a number too long to echo whole
MAX_LATENT_COORD = 1_000_000  # the largest latent coordinate --points, --bounds and --sigma take (a prior's: about 3)


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


def check_model(spec: str, option: str = "--model"):
    """Resolve and check weights for their role: an unknown name is a usage error; a damaged
    file, or weights of the wrong kind, an Error."""
    from mnistgen import checkpoint

    try:
        checkpoint.resolve(spec)
    except MnistgenError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
    return checkpoint.inspect_role(spec, option)


def check_classifiers(spec: str) -> None:
    """`check_model` for each classifier of `--classifier NAME[,NAME...]`."""
    from mnistgen import verifiers

    try:
        names = verifiers.verifier_specs(spec)
    except MnistgenError as exc:
        raise typer.BadParameter(str(exc), param_hint="--classifier") from None
    for name in names:
        check_model(name, "--classifier")


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
