"""Sampling decisions and latents: the resolved sampling spec, labels, priors, block plans and the
confidence filter. Pure numpy (decoders are passed in, see decoders.py); writes nothing.

A model card's sampling recommendations and fitted priors are checked where they are read
(`card_setting`, `prior_table`): the card is not covered by the weights' sha256, so a value
outside its option's range (SETTING_RANGES) or a malformed table is refused, naming the card.

Reproducibility rules:
- latents are drawn per block of BLOCK images aligned to the global index within a label,
  from a random stream keyed by (seed, label, block): image i of digit 7 gets the same z
  whether you ask for 10 or 10,000 images, for digit 7 alone or for all digits, in one run
  or in shards;
- decoding always runs on whole blocks, so pixels never depend on batch size or sharding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from mnistgen import checkpoint
from mnistgen.checkpoint import Weights
from mnistgen.config import (
    ALL_LABELS,
    DEFAULT_CLASSIFIER,
    MAX_COUNT,
    MAX_SEED,
    SETTING_RANGES,
    UNLABELLED,
    UNLABELLED_DIR,
    Precision,
    PriorKind,
)
from mnistgen.data import one_hot, shown
from mnistgen.errors import MnistgenError
from mnistgen.priors import MAX_COMPONENTS

BLOCK = 256  # images per latent draw and per decode call
STREAM_GENERATE = 10  # keeps generation's random stream apart from training's
STREAM_TRUNCATE = 11  # the redraws that replace draws outside a truncation radius
STREAM_COMPONENT = 12  # which mixture component each latent of a block comes from
TRUNCATION_POOL = 64  # candidates drawn per needed latent and round when truncating
TRUNCATION_ROUNDS = 8  # rounds before a truncation radius is declared too small for the latent
UNLABELLED_KEY = 1_000  # stream key for unlabelled samples (labels are < 256)
IMAGE_SIDE = 28
MAX_FILTER_ATTEMPTS = 200  # redraw chunks per block before a confidence filter gives up
REDRAW_CHUNK = 16  # redraws are decoded in multiples of this many candidates, at most a BLOCK (at 97%
# acceptance a block misses ~8 images: 16 candidates cover them, where 32 made every block cost 12.5% more)
REDRAW_MARGIN = 1.25  # candidates drawn per missing image, beyond the block's own acceptance rate
MIN_TRIES_FOR_VERDICT = 1_000  # candidates seen before a hopeless acceptance rate is declared
MIN_ACCEPTANCE = 0.01  # below 1% accepted, --min-confidence is refused as impossible


def stream_key(label: int) -> int:
    """A label's key in the random streams (an unconditional model's samples have their own)."""
    return UNLABELLED_KEY if label == UNLABELLED else label


def block_latents(
    seed: int,
    label: int,
    block: int,
    latent: int,
    temperature: float = 1.0,
    attempt: int = 0,
    truncation: Optional[float] = None,
    truncation_card: Optional[Path] = None,
) -> np.ndarray:
    """float32 (BLOCK, latent): prior samples for images [block*BLOCK, (block+1)*BLOCK) of `label`
    (attempt > 0: the redraws a confidence filter asks for). With a truncation radius R, standard-
    normal draws longer than R are replaced, in order, by the next draws of the block's own
    redraw stream that fall inside (the "truncation trick", Brock et al., ICLR 2019): still a
    function of (seed, label, block, attempt) only."""
    key = stream_key(label)
    rng = np.random.default_rng([seed, STREAM_GENERATE, key, block] + ([attempt] if attempt else []))
    eps = rng.standard_normal((BLOCK, latent), dtype=np.float32)
    if truncation is not None:
        redraws = np.random.default_rng([seed, STREAM_TRUNCATE, key, block, attempt])
        eps = _truncate(eps, truncation, redraws, truncation_card)
    return eps * np.float32(temperature)


def _truncate(eps: np.ndarray, radius: float, redraws: np.random.Generator, card: Optional[Path]) -> np.ndarray:
    outside = np.flatnonzero(np.linalg.norm(eps, axis=1) > radius)
    for _ in range(TRUNCATION_ROUNDS):
        if not len(outside):
            return eps
        pool = redraws.standard_normal((TRUNCATION_POOL * len(outside), eps.shape[1]), dtype=np.float32)
        inside = pool[np.linalg.norm(pool, axis=1) <= radius][: len(outside)]
        eps[outside[: len(inside)]] = inside
        outside = outside[len(inside) :]
    if len(outside):
        raise MnistgenError(
            f"{setting_text('truncation', radius, card)} keeps almost no draws of a {eps.shape[1]}-dimensional latent "
            f"(their typical length is {np.sqrt(eps.shape[1]):.1f}): use a larger radius"
        )
    return eps


@dataclass(frozen=True)
class Prior:
    """Where latents come from: N(0, I) scaled by the temperature ("standard"), or a density fitted
    to the training data's aggregate posterior, per label, from the model card (priors.py): one
    Gaussian ("fitted") or a Gaussian mixture ("mixture"). The temperature scales the standard-normal
    draws, so it scales each Gaussian (each mixture component) about its mean."""

    kind: str = "standard"
    table: Optional[dict] = None  # label key -> arrays, made once by make_prior: (mean, cholesky), or a mixture's
    # (weights, means, cholesky factors)
    truncation: Optional[float] = None  # redraw standard-normal draws longer than this (None: keep all)
    truncation_card: Optional[Path] = None  # the model card that recommended the radius (None: --truncation)

    def apply(self, eps: np.ndarray, label: int, components: Optional[np.random.Generator] = None) -> np.ndarray:
        """Map standard-normal draws (already scaled by the temperature) to this prior; a mixture
        picks each draw's component from `components`, a stream of its own."""
        if self.kind == PriorKind.standard.value:
            return eps
        entry = self.table["all" if label == UNLABELLED else str(label)]
        if self.kind == PriorKind.fitted.value:
            mean, chol = entry
            return (mean + eps @ chol.T).astype(np.float32)
        weights, means, chols = entry
        pick = components.choice(len(weights), size=len(eps), p=weights)  # (B,)
        z = means[pick] + np.einsum("bij,bj->bi", chols[pick], eps.astype(np.float64))  # (B, d), in float64:
        return z.astype(np.float32)  # rounded once, so the latents do not depend on a CPU's float32 kernels


def prior_keys(weights: Weights) -> list[str]:
    """The entries of a card's prior tables that sampling looks up: one per label it trained on, "all" for a VAE."""
    return [str(c) for c in trained_labels(weights)] if weights.config.conditional else ["all"]


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


def _fitted_entry(entry: dict, latent: int) -> Optional[tuple]:
    """(mean (d,), Cholesky factor (d, d)), float32; None unless well formed."""
    mean, chol = np.asarray(entry["mean"], np.float32), np.asarray(entry["cholesky"], np.float32)
    well_formed = mean.shape == (latent,) and chol.shape == (latent, latent)
    return (mean, chol) if well_formed and np.isfinite(mean).all() and np.isfinite(chol).all() else None


def _mixture_entry(entry: dict, latent: int) -> Optional[tuple]:
    """(weights (K,) summing to 1, means (K, d), Cholesky factors (K, d, d)), float64; None unless
    well formed: at most MAX_COMPONENTS components, positive weights."""
    weights = np.asarray(entry["weights"], np.float64)
    means, chols = np.asarray(entry["means"], np.float64), np.asarray(entry["cholesky"], np.float64)
    k = len(weights)
    well_formed = (
        weights.shape == (k,)
        and 0 < k <= MAX_COMPONENTS
        and means.shape == (k, latent)
        and chols.shape == (k, latent, latent)
        and (weights > 0).all()
        and all(np.isfinite(a).all() for a in (weights, means, chols))
    )
    return (weights / weights.sum(), means, chols) if well_formed else None


PRIOR_ENTRIES = {PriorKind.fitted.value: _fitted_entry, PriorKind.mixture.value: _mixture_entry}
FALLBACK_PRIOR = {PriorKind.fitted.value: PriorKind.standard.value, PriorKind.mixture.value: PriorKind.fitted.value}


def prior_table(weights: Weights, kind: str) -> dict:
    """The card's `kind` prior ("fitted" or "mixture", from its "latent_stats") as arrays: label
    key -> a fitted Gaussian's or a mixture's arrays. Refused unless it has an entry for every
    label the model samples, each of the model's latent size and finite."""
    table = (weights.card.get("latent_stats") or {}).get(kind)
    if not table:
        raise MnistgenError(
            f"--prior {kind}: model {weights.name}'s card has no {kind} prior; "
            "retrain it with this mnistgen, or use --prior standard"
        )
    arrays = {}
    for key in prior_keys(weights):
        try:
            arrays[key] = PRIOR_ENTRIES[kind](table[key], weights.config.latent)
        except (KeyError, IndexError, TypeError, ValueError):
            arrays[key] = None
        if arrays[key] is None:
            raise MnistgenError(
                f"model card {card_path(weights)} has a damaged {kind} prior (label {key}): refit it with "
                f"examples/refit_prior.py, or pass --prior {FALLBACK_PRIOR[kind]}"
            )
    return arrays


PRIORS = tuple(p.value for p in PriorKind)
CARD_PRIORS = tuple(p.value for p in PriorKind if p is not PriorKind.auto)  # what a card may recommend
DEFAULT_TEMPERATURE = 1.0
DEFAULT_SHARPEN = 1.0  # the decoder's mean image, as trained


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


def choice(kind: type, value, option: str) -> str:
    """A choice given to the API (`prior`, `precision`): None is "auto" (the card's, or the
    machine's), anything else must be one of the option's values."""
    if value is None:
        return kind.auto.value
    try:
        return kind(value).value
    except ValueError:
        raise MnistgenError(f"{option}={value!r}: use one of {', '.join(k.value for k in kind)}") from None


def make_prior(weights: Weights, kind: str = "auto", truncation: Optional[float] = None) -> Prior:
    """`auto` takes the prior the model card recommends, else standard. truncation: a radius for
    the standard-normal draws, 0 for none, None for the card's recommendation (else none)."""
    given = choice(PriorKind, kind, "prior")
    kind = recommended(weights, "prior", None if given == PriorKind.auto.value else given, "standard")
    radius = float(recommended(weights, "truncation", truncation, 0)) or None
    card = card_path(weights) if truncation is None and radius else None
    if kind == PriorKind.standard.value:
        return Prior(truncation=radius, truncation_card=card)
    return Prior(kind, prior_table(weights, kind), radius, card)


Verifier = Union[Weights, tuple[Weights, ...]]  # one classifier, or the members of an all-must-agree ensemble
VERIFIER_KEY = "verifier_sha256"  # recorded beside verified outputs: which classifiers kept the samples
# Every key Sampling.attrs records (the last two only for a verified run): what a --resume or a
# sibling shard must match (records.RESUME_SETTINGS), so a new setting is checked once it is here.
SAMPLING_KEYS = ("temperature", "prior", "truncation", "sharpen", "min_confidence", VERIFIER_KEY)


@dataclass(frozen=True)
class Sampling:
    """How a model's samples are drawn, decided once by `resolve_sampling` from the user's options
    and the model card, then carried by generate jobs, evaluate, the Python API and datasets; the
    one source of the settings recorded beside every output."""

    prior: Prior = Prior()
    temperature: float = DEFAULT_TEMPERATURE
    sharpen: float = DEFAULT_SHARPEN
    min_confidence: float = 0.0  # 0: every sample is kept
    classifier: Optional[Verifier] = None  # the verifier, when min_confidence > 0
    min_confidence_card: Optional[Path] = None  # the model card that recommended the threshold (None: the option)
    precision: str = Precision.auto.value  # asked for; the decoder records what it runs

    @property
    def verified(self) -> bool:
        return self.min_confidence > 0 and self.classifier is not None

    def attrs(self) -> dict:
        """The settings as recorded in file attributes, manifests and summaries (SAMPLING_KEYS)."""
        return {
            "temperature": self.temperature,
            "prior": self.prior.kind,
            "truncation": self.prior.truncation or 0,
            "sharpen": self.sharpen,
            **({"min_confidence": self.min_confidence} if self.verified else {}),
            **({VERIFIER_KEY: [member.sha256 for member in members(self.classifier)]} if self.verified else {}),
        }


def resolve_sampling(
    weights: Weights,
    *,
    prior: Optional[str] = PriorKind.auto.value,
    temperature: Optional[float] = None,
    truncation: Optional[float] = None,
    sharpen: Optional[float] = None,
    min_confidence: Optional[float] = None,
    classifier: Optional[str] = None,
    precision: Optional[str] = Precision.auto.value,
) -> Sampling:
    """The one place sampling settings are decided: every None takes the model card's
    recommendation, else the library default. The verifier (`classifier` None) is the model's own
    companion classifier when its card records one (a path relative to the model's directory),
    else the shipped classifier. A card that verifies by default names the way out when its
    classifier is missing; a classifier whose classes differ from the model's is refused."""
    threshold = float(recommended(weights, "min_confidence", min_confidence, 0))
    verifier = _verifier(weights, classifier, card_default=min_confidence is None) if threshold else None
    return Sampling(
        prior=make_prior(weights, prior, truncation),
        temperature=float(recommended(weights, "temperature", temperature, DEFAULT_TEMPERATURE)),
        sharpen=float(recommended(weights, "sharpen", sharpen, DEFAULT_SHARPEN)),
        min_confidence=threshold,
        classifier=verifier,
        min_confidence_card=card_path(weights) if min_confidence is None and threshold else None,
        precision=choice(Precision, precision, "precision"),
    )


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


def _verifier(generator: Weights, classifier: Optional[str], card_default: bool) -> Verifier:
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
    without repeats, as --digit gives them."""
    if digits is None:
        return None
    values = [digits] if np.isscalar(digits) else list(digits)
    if not values or not all(map(is_whole, values)) or min(values) < 0:
        raise MnistgenError(f"{what} {digits!r}: give a label index (0 or more) or a list of them")
    return sorted({int(v) for v in values})


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


def latents(
    seed: int, label: int, block: int, latent: int, temperature: float = 1.0, attempt: int = 0, prior: Prior = Prior()
) -> np.ndarray:
    """float32 (BLOCK, latent): the latents of images [block*BLOCK, (block+1)*BLOCK) of `label`."""
    components = (
        np.random.default_rng([seed, STREAM_COMPONENT, stream_key(label), block, attempt])
        if prior.kind == PriorKind.mixture.value
        else None
    )
    eps = block_latents(seed, label, block, latent, temperature, attempt, prior.truncation, prior.truncation_card)
    return prior.apply(eps, label, components)


@dataclass
class Batch:
    label: int  # digit (or UNLABELLED)
    indices: np.ndarray  # int64 (n,): index of each image within its label
    z: np.ndarray  # float32 (n, d)
    images: Optional[np.ndarray]  # uint8 (n, 28, 28); None when only latents were asked for


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    count: int

    def bounds(self, total: int) -> tuple[int, int]:
        """This shard's [start, stop) of the global sequence of `total` images."""
        return self.index * total // self.count, (self.index + 1) * total // self.count


def plan(labels: list[int], count: int, shard: Shard = Shard(0, 1)) -> Iterator[tuple[int, int, int, int]]:
    """Yield (label, block, lo, hi): the images [lo, hi) of `label` inside `block` this shard owns.

    The global sequence is label-major: all images of labels[0], then labels[1], ...
    """
    start, stop = shard.bounds(len(labels) * count)
    for pos, label in enumerate(labels):
        first, last = max(start - pos * count, 0), min(stop - pos * count, count)
        for block in range(first // BLOCK, -(-last // BLOCK) if last > first else 0):
            lo, hi = max(first, block * BLOCK), min(last, (block + 1) * BLOCK)
            if hi > lo:
                yield label, block, lo, hi


def redraw_size(missing: int, rate: float) -> int:
    """Candidates to decode for `missing` images at acceptance `rate`: a multiple of REDRAW_CHUNK,
    at most a BLOCK."""
    wanted = missing / rate * REDRAW_MARGIN  # (expected tries for the missing images) x margin
    return int(min(BLOCK, REDRAW_CHUNK * np.ceil(wanted / REDRAW_CHUNK)))


class ConfidenceFilter:
    """Keeps only samples a classifier assigns to their label with probability >= threshold.

    A block is decoded and judged whole; its rejected images are then replaced, in index order, by
    the accepted candidates of redraw chunks from the streams (seed, label, block, attempt). Each
    chunk holds as many candidates as the missing images need at the block's own first-pass
    acceptance rate (x REDRAW_MARGIN), rounded up to a multiple of REDRAW_CHUNK: a block at 90%
    acceptance costs about a fifth more, not a second full decode. The sizes depend only on the
    block, so the image at an index does too - not batch size, shard or resume.
    """

    def __init__(self, judge, threshold: float, max_attempts: int = MAX_FILTER_ATTEMPTS, card: Optional[Path] = None):
        self.judge, self.threshold, self.max_attempts = judge, threshold, max_attempts
        self.card = card  # the model card that recommended the threshold (None: --min-confidence)
        self.tried = self.accepted = 0

    @property
    def acceptance(self) -> float:
        return self.accepted / self.tried if self.tried else 1.0

    def accept(self, images: np.ndarray, label: int) -> np.ndarray:
        probs = self.judge(images)  # (B, classes)
        score = probs.max(1) if label == UNLABELLED else probs[:, label]
        passed = score >= self.threshold
        self.tried += len(images)  # every candidate judged: a fair estimate of the rate
        self.accepted += int(passed.sum())
        return passed

    def run(self, decoder, seed: int, label: int, block: int, temperature: float, onehot, prior: Prior = Prior()):
        """(z, images) of the whole block, every image accepted."""
        d = decoder.config.latent
        z = latents(seed, label, block, d, temperature, 0, prior)
        images = decoder(z, onehot)
        missing = np.flatnonzero(~self.accept(images, label))
        rate = max(1.0 - len(missing) / len(z), 1.0 / len(z))  # this block's own: chunk sizes depend on it alone
        for attempt in range(1, self.max_attempts + 1):
            if not len(missing):
                return z, images
            if self.tried >= MIN_TRIES_FOR_VERDICT and self.acceptance < MIN_ACCEPTANCE:
                break
            size = redraw_size(len(missing), rate)
            z_new = latents(seed, label, block, d, temperature, attempt, prior)[:size]
            images_new = decoder(z_new, onehot[:size] if onehot is not None else None)
            take = np.flatnonzero(self.accept(images_new, label))[: len(missing)]
            z[missing[: len(take)]], images[missing[: len(take)]] = z_new[take], images_new[take]
            missing = missing[len(take) :]
        if not len(missing):
            return z, images
        raise MnistgenError(
            f"{setting_text('min_confidence', self.threshold, self.card)}: only {self.acceptance:.2%} of samples "
            f"of label {label} pass after "
            f"{self.tried} tries; lower --min-confidence or use a better model"
        )


def block_batch(
    decoder,
    seed: int,
    label: int,
    block: int,
    lo: int,
    hi: int,
    temperature: float = 1.0,
    decode: bool = True,
    confidence: Optional[ConfidenceFilter] = None,
    prior: Prior = Prior(),
) -> Batch:
    """Images [lo, hi) of `label` from `block`: the whole block's latents are drawn and decoded,
    so the pixels do not depend on which part of the block is wanted. decode=False gives the
    latents only (resume: the images are already on disk); with a filter, decoding is needed
    to know which latents were kept, so it always decodes."""
    keep = slice(lo - block * BLOCK, hi - block * BLOCK)
    onehot = None if label == UNLABELLED else one_hot(np.full(BLOCK, label), decoder.config.num_classes)
    if confidence is not None:
        z, images = confidence.run(decoder, seed, label, block, temperature, onehot, prior)
        return Batch(label, np.arange(lo, hi, dtype=np.int64), z[keep], images[keep])
    z = latents(seed, label, block, decoder.config.latent, temperature, 0, prior)
    images = decoder(z, onehot)[keep] if decode else None
    return Batch(label, np.arange(lo, hi, dtype=np.int64), z[keep], images)


@dataclass
class Sampler:
    """A resolved sampling spec with what runs it: a decoder (decoders.py) and, when the spec
    verifies, its confidence filter. The one way generate, evaluate, the API and datasets draw
    images, so pixels agree everywhere for the same seed."""

    decoder: object  # (z (B, d), onehot (B, C) | None) -> uint8 (B, 28, 28), with .config/.name/.precision
    sampling: Sampling = Sampling()
    confidence: Optional[ConfidenceFilter] = None

    def batch(self, seed: int, label: int, block: int, lo: int, hi: int, decode: bool = True) -> Batch:
        """Images [lo, hi) of `label` from `block` (see block_batch)."""
        s = self.sampling
        return block_batch(self.decoder, seed, label, block, lo, hi, s.temperature, decode, self.confidence, s.prior)

    def generate(self, labels: list[int], count: int, seed: int, shard: Shard = Shard(0, 1)) -> Iterator[Batch]:
        """`count` images per label (this shard's part), block by block."""
        for label, block, lo, hi in plan(labels, count, shard):
            yield self.batch(seed, label, block, lo, hi)

    def arrays(
        self, labels: list[int], count: int, seed: int, on_progress=lambda drawn: None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All of `generate` at once: images uint8 (N, 28, 28), labels int64 (N,) (UNLABELLED for a
        VAE), latents float32 (N, d), in generate's label-major order; `on_progress(images drawn)`
        hears of each block."""
        batches, drawn = [], 0
        for batch in self.generate(labels, count, seed):
            batches.append(batch)
            drawn += len(batch.images)
            on_progress(drawn)
        return (
            np.concatenate([b.images for b in batches]),
            np.concatenate([np.full(len(b.images), b.label, np.int64) for b in batches]),
            np.concatenate([b.z for b in batches]),
        )
