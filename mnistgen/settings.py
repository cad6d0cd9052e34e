"""One sampling setting at a time: the checks of a value the Python API passes (a whole number, a
number in its option's range; the choices are checked by config.SamplingRequest) and the value a
model card's "sampling" section recommends. Pure Python over the card; writes nothing.

A card's recommendations are checked where they are read (`card_setting`): the card is not covered
by the weights' sha256, so a value outside its option's range (SETTING_RANGES) is refused, naming
the card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from mnistgen import checkpoint
from mnistgen.checkpoint import Weights
from mnistgen.config import SETTING_RANGES, PriorKind
from mnistgen.errors import MnistgenError

CARD_PRIORS = tuple(p.value for p in PriorKind if p is not PriorKind.auto)  # what a card may recommend


def card_path(weights: Weights) -> Path:
    """The model card beside the weights (the one a damaged section is reported in)."""
    return weights.path.with_suffix(checkpoint.CARD_SUFFIX)


def card_setting(weights: Weights, key: str):
    """The setting `key` the model card's "sampling" section recommends (None: none), refused
    unless the matching option would accept it: the card is not covered by the weights' sha256."""
    value = (weights.card.get("sampling") or {}).get(key)
    if value is None:
        return None
    if key in SETTING_RANGES:
        option, valid, accepts = SETTING_RANGES[key].option, in_range(key, value), range_text(key)
    elif key == "prior":
        option, valid, accepts = "--prior", isinstance(value, str) and value in CARD_PRIORS, ", ".join(CARD_PRIORS)
    else:  # "classifier": file names beside the model, comma-separated
        option, valid, accepts = "--classifier", isinstance(value, str) and bool(value.strip()), "a file name"
    if not valid:
        raise MnistgenError(
            f"model card {card_path(weights)} recommends {key} {value!r} ({option} takes {accepts}): pass {option} "
            "to override it, or fix the card"
        )
    return value


def is_whole(value) -> bool:
    """An int or a numpy integer, not a bool: what a count, a seed or a label the API takes may be."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value) -> bool:
    """An int or a float, numpy's too, not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def in_range(key: str, value) -> bool:
    """Whether `value` is a number its setting's option (SETTING_RANGES) would accept."""
    _, low, high = SETTING_RANGES[key]
    return is_number(value) and low <= value <= high


def range_text(key: str) -> str:
    _, low, high = SETTING_RANGES[key]
    return f"a number from {low:g} to {high:g}"


def setting_text(key: str, value: float, card: Optional[Path] = None) -> str:
    """A setting as an error message names it: the option the user passed, or the card that recommended it."""
    option = SETTING_RANGES[key].option
    return f"{option} {value:g}" if card is None else f"{key} {value:g} (recommended by model card {card})"


def _given_setting(key: str, value):
    """A setting passed in (the CLI's options are range-checked by Typer already; the Python API's
    keywords are checked here, against the same ranges)."""
    if key in SETTING_RANGES and not in_range(key, value):
        raise MnistgenError(f"{key}={value!r}: {SETTING_RANGES[key].option} takes {range_text(key)}")
    return value


def recommended(weights: Weights, key: str, explicit, default):
    """An explicit sampling setting, else the one the model card's "sampling" section recommends
    (chosen from evaluate's figures when the model was shipped), else `default`."""
    if explicit is not None:
        return _given_setting(key, explicit)
    value = card_setting(weights, key)
    return default if value is None else value
