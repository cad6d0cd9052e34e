"""Which labels a request names: the Python API's count, seed, digits and classes, checked as
generate's --count, --seed, --digit and --class take them, and resolved to the label indices of a
model (by default every label it trained on; the one unlabelled stream of a VAE). Writes nothing.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from mnistgen.checkpoint import Weights
from mnistgen.config import ALL_LABELS, MAX_COUNT, MAX_SEED, UNLABELLED, UNLABELLED_DIR
from mnistgen.data import shown
from mnistgen.errors import MnistgenError
from mnistgen.settings import is_whole


def trained_labels(weights: Weights) -> list[int]:
    """The labels a conditional model saw training images of (its card's per-label centroids, when
    they were computed on all its training images), else all its labels: digit-named class folders
    3/ and 7/ make a 10-label model that knows two."""
    every = list(range(weights.config.num_classes))
    stats = weights.card.get("latent_stats") or {}
    centroids, counted = stats.get("centroids"), stats.get("images")
    if counted != (weights.card.get("training") or {}).get("train_images"):  # a share of them: labels may be missing
        return every
    seen = [label for label in every if isinstance(centroids, dict) and str(label) in centroids]
    return seen or every


def check_request(count, seed) -> None:
    """The Python API's count (per label) and seed, as generate's --count and --seed take them."""
    if not is_whole(count) or not 1 <= count <= MAX_COUNT:
        raise MnistgenError(f"count must be a whole number of images per class, 1 to {MAX_COUNT:,}: got {count!r}")
    check_seed(seed)


def check_seed(seed) -> None:
    """A seed of the Python API, as --seed takes it."""
    if not is_whole(seed) or not 0 <= seed <= MAX_SEED:
        raise MnistgenError(f"seed must be a whole number from 0 to {MAX_SEED}: got {seed!r}")


def requested_digits(digits, what: str = "digits") -> Optional[list[int]]:
    """The Python API's digits (None: every trained label): an index or a list of them, sorted and
    without repeats, as --digit gives them. Text (a class name, `digit="É"`) is refused naming where
    names go (`names_fix`)."""
    if digits is None:
        return None
    values = [digits] if np.isscalar(digits) else list(digits)
    if any(isinstance(v, str) for v in values):
        plain = [v.item() if isinstance(v, np.generic) else v for v in values]  # np.str_('É') shown as 'É'
        raise MnistgenError(f"{what} {digits!r}: {names_fix(what, plain)}")
    if not values or not all(map(is_whole, values)) or min(values) < 0:
        raise MnistgenError(f"{what} {digits!r}: give a label index (0 or more) or a list of them")
    return sorted({int(v) for v in values})


def names_fix(option: str, names: list) -> str:
    """What to do with class names given where label indices go, in the caller's words: `option` an
    option (`--digit`: the command line's, where --class takes names) or a keyword (the API's `digit`
    or `digits`, where `classes=` does)."""
    if option.startswith("--"):
        return f"{option} takes label indices (0 or more); give class names as --class {','.join(map(str, names))}"
    given = names[0] if len(names) == 1 else names
    return f"{option}= takes label indices (0 or more); give class names as classes={given!r}"


def labels_for(weights: Weights, digits: Optional[list[int]], option: str = "--digit") -> list[int]:
    """The labels to generate: the requested digits for a CVAE (by default every label it trained
    on), the one unlabelled stream for a VAE. A refusal names them as they were given: `option`
    --digit by number, --class by the card's class names."""
    config = weights.config
    if not config.conditional:
        if digits is not None:
            raise MnistgenError(
                f"model {weights.name} is an unconditional VAE and has no labels: drop --digit "
                f"(it writes to {UNLABELLED_DIR}/), or use a conditional model such as cvae-2d"
            )
        return [UNLABELLED]
    known = trained_labels(weights)
    if digits is None:
        return known
    bad = [d for d in digits if d >= config.num_classes]
    if bad:
        raise MnistgenError(f"{option} {bad[0]}: model {weights.name} knows labels 0-{config.num_classes - 1} only")
    unseen = [d for d in digits if d not in known]
    if unseen:
        by_name = option == "--class"
        names = weights.class_names if by_name else [str(d) for d in range(config.num_classes)]
        first, what = names[unseen[0]], "class" if by_name else "label"
        raise MnistgenError(
            f"{option} {first}: model {weights.name} saw no training images of {what} {first} (it was trained on "
            f"{', '.join(names[d] for d in known)}): generate those"
        )
    return digits


def digits_note(weights: Weights, digits: Optional[list[int]]) -> Optional[str]:
    """--digit takes label indices: for a model whose classes are not the digits themselves (words,
    Fashion names), the classes they give, named (`--digit 3` of zero...nine is "nine"); else None."""
    if digits is None or not weights.config.conditional:
        return None
    names = weights.class_names
    if all(names[d] == str(d) for d in digits):
        return None
    given = shown(f"{d} is {names[d]!r}" for d in digits)
    return f"--digit gives label indices: in model {weights.name}, label {given}; --class chooses by name"


def requested_labels(weights: Weights, digits=None, classes=None, what: str = "digits") -> Optional[list[int]]:
    """The Python API's choice of labels: `digits` (indices) or `classes` (the card's names, or
    indices; one or a list), not both; None: every trained label."""
    if digits is not None and classes is not None:
        raise MnistgenError(f"give {what} or classes, not both")
    if classes is None:
        return requested_digits(digits, what)
    names = [classes] if isinstance(classes, (str, int, np.integer)) else list(classes)
    return resolve_classes(weights, ",".join(str(c) for c in names))


def resolve_classes(weights: Weights, text: str) -> Optional[list[int]]:
    """`--class Sneaker,0` -> label indices, by the names in the model card or as indices; `all`
    (unless the model has a class of that name) -> None, every label it trained on, as --digit all."""
    if not weights.config.conditional:
        raise MnistgenError(
            f"model {weights.name} is an unconditional VAE and has no classes: drop --class (it writes to "
            f"{UNLABELLED_DIR}/), or use a conditional model"
        )
    names = weights.class_names
    if text.strip().lower() == ALL_LABELS and text.strip() not in names:
        return None
    found = []
    for item in (part.strip() for part in text.split(",")):
        if item in names:
            found.append(names.index(item))
        elif item.isascii() and item.isdigit() and len(item) <= len(str(len(names))) and int(item) < len(names):
            found.append(int(item))
        else:
            raise MnistgenError(
                f"--class {item!r}: model {weights.name} has classes {', '.join(names)} "
                f"(or their indices 0-{len(names) - 1})"
            )
    return sorted(set(found))
