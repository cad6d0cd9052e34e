"""The verifier: which classifier, or ensemble of classifiers that must all agree, checks a model's
samples (--classifier, else the companion its card names, else the shipped one), and whether it
knows the model's classes (one of other classes would grade by index). Reads weights files'
headers; loads no Paddle and writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from mnistgen import checkpoint
from mnistgen.checkpoint import Weights
from mnistgen.config import DEFAULT_CLASSIFIER
from mnistgen.data import shown
from mnistgen.errors import MnistgenError
from mnistgen.settings import card_setting

Verifier = Union[Weights, tuple[Weights, ...]]  # one classifier, or the members of an all-must-agree ensemble


def companion_paths(generator: Weights) -> list[Path]:
    """The verifier the model's card names (its companion classifier, or several joined by commas),
    as paths beside the model; none if it names none."""
    recorded = card_setting(generator, "classifier")
    return [generator.path.parent / name for name in str(recorded).split(",")] if recorded else []


def named_verifier(generator: Weights, classifier: Optional[str] = None) -> Verifier:
    """`classifier` (--classifier NAME[,NAME...]) when given, else the verifier the model's card
    names (each path whole: a directory with a comma in its name is fine), else the shipped one."""
    paths = [] if classifier else companion_paths(generator)
    if not paths:
        return inspect_verifier(classifier or DEFAULT_CLASSIFIER)
    found = tuple(checkpoint.inspect_role(str(path), "--classifier") for path in paths)
    return found[0] if len(found) == 1 else found


def members(verifier: Optional[Verifier]) -> list[Weights]:
    """The classifiers of a verifier: one, an ensemble's members, or none."""
    if verifier is None:
        return []
    return [verifier] if isinstance(verifier, Weights) else list(verifier)


def verifier_name(verifier: Verifier) -> str:
    return ",".join(member.name for member in members(verifier))


def verifier_specs(spec: str) -> list[str]:
    """The names or paths in `--classifier NAME[,NAME...]` (a path that exists is one, commas or not)."""
    names = [spec] if Path(spec).exists() else [name.strip() for name in spec.split(",") if name.strip()]
    if not names:
        raise MnistgenError("--classifier names no classifier: pass NAME[,NAME...], e.g. --classifier classifier")
    return names


def inspect_verifier(spec: str) -> Verifier:
    """`--classifier NAME[,NAME...]`: one classifier, or several that must all agree (an ensemble:
    a sample passes only when every member gives its label at least --min-confidence)."""
    found = tuple(checkpoint.inspect_role(name, "--classifier") for name in verifier_specs(spec))
    return found[0] if len(found) == 1 else found


def sampling_verifier(generator: Weights, classifier: Optional[str], card_default: bool) -> Verifier:
    if not classifier:
        card_setting(generator, "classifier")  # a damaged recommendation is the card's fault, not a missing file
    try:
        verifier = named_verifier(generator, classifier)
    except MnistgenError as exc:
        if not card_default:
            raise
        raise MnistgenError(
            f"model {generator.name} checks its samples with a classifier by default, but {exc}; "
            "pass --classifier NAME|PATH, or --min-confidence 0 to skip the check"
        ) from None
    if generator.config.conditional:  # a verifier of other classes is refused
        usable_verifier(verifier, generator.class_names, f"model {generator.name}", True, VERIFY_FIX)
    return verifier


VERIFY_FIX = "pass a classifier trained on the model's classes, or --min-confidence 0"
REPORT_FIX = "pass a classifier trained on the model's classes, or leave --classifier out"  # evaluate's verifier


def usable_verifier(
    verifier: Verifier, names: list[str], owner: str, chosen: bool, fix: str
) -> tuple[Optional[Verifier], Optional[str]]:
    """`verifier` when every member knows `names` (the classes of `owner`, in order), with no note.
    A member of other classes would grade by index (a 0.00% that says nothing): refused when the
    verifier was `chosen` (--classifier, a model card's companion), else none and the reason why."""
    for member in members(verifier):
        theirs = member.class_names
        if theirs == names:
            continue
        if chosen:
            raise MnistgenError(
                f"--classifier {member.name} knows classes {shown(theirs)} but {owner} has {shown(names)}: {fix}"
            )
        return None, (
            f"no verifier accuracy: {member.name} knows classes {shown(theirs)}, not those of {owner} "
            f"({shown(names)}); pass --classifier, one trained on them"
        )
    return verifier, None


def evaluation_verifier(
    generator: Weights, classifier: Optional[str] = None
) -> tuple[Optional[Verifier], Optional[str]]:
    """The verifier evaluate reports beside the judge for a model's samples, chosen as generate's
    verification chooses it (`named_verifier`: --classifier, else the card's companion, else the
    shipped one): one of other classes than the model's is refused when named (by the user or the
    card), and left out with the reason (the second item) when it is only the shipped default."""
    verifier = named_verifier(generator, classifier)
    if not generator.config.conditional:  # no labels: nothing is graded by index
        return verifier, None
    chosen = bool(classifier or companion_paths(generator))
    return usable_verifier(verifier, generator.class_names, f"model {generator.name}", chosen, REPORT_FIX)
