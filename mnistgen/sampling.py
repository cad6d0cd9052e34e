"""The sampling spec: how a model's samples are drawn (prior, temperature, truncation, sharpen,
verification, precision), decided once by `resolve_sampling` from what the caller asked for (a
config.SamplingRequest) and the model card, and the priors latents are mapped through. Drawing the
samples is sample.py's; writes nothing.

A card's fitted priors are checked where they are read (`prior_table`): the card is not covered by
the weights' sha256, so a malformed table is refused, naming the card.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from mnistgen.checkpoint import Weights
from mnistgen.config import UNLABELLED, Precision, PriorKind, SamplingRequest
from mnistgen.errors import MnistgenError
from mnistgen.labels import trained_labels
from mnistgen.priors import MAX_COMPONENTS
from mnistgen.settings import card_path, recommended
from mnistgen.verifiers import Verifier, members, sampling_verifier, verifier_name


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

    def __eq__(self, other) -> bool:
        """Alike in every field, tables array by array (the dataclass's == took arrays as truth values: it raised)."""
        if not isinstance(other, Prior):
            return NotImplemented
        same = all(getattr(self, name) == getattr(other, name) for name in ("kind", "truncation", "truncation_card"))
        return same and _same_tables(self.table, other.table)

    def __hash__(self) -> int:
        return hash((self.kind, self.truncation, self.truncation_card, tuple(self.table or ())))

    def __repr__(self) -> str:
        """What it is, not its arrays (a mixture's fill screens): `mixture(10 labels, up to 10 components)`."""
        shape = []
        if self.table:
            keys = list(self.table)
            shape.append("unlabelled" if keys == ["all"] else f"{len(keys)} label{'s' * (len(keys) != 1)}")
        if self.kind == PriorKind.mixture.value and self.table:
            shape.append(f"up to {max(len(entry[0]) for entry in self.table.values())} components")
        if self.truncation:
            shape.append(f"truncation={self.truncation:g}")
        return f"{self.kind}({', '.join(shape)})" if shape else self.kind

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


def _same_tables(a: Optional[dict], b: Optional[dict]) -> bool:
    """Two prior tables (label key -> a tuple of arrays) hold the same arrays under the same keys."""
    if a is None or b is None:
        return a is b
    return a.keys() == b.keys() and all(
        len(a[key]) == len(b[key]) and all(map(np.array_equal, a[key], b[key])) for key in a
    )


def prior_keys(weights: Weights) -> list[str]:
    """The entries of a card's prior tables that sampling looks up: one per label it trained on, "all" for a VAE."""
    return [str(c) for c in trained_labels(weights)] if weights.config.conditional else ["all"]


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


DEFAULT_TEMPERATURE = 1.0
DEFAULT_SHARPEN = 1.0  # the decoder's mean image, as trained


def make_prior(weights: Weights, kind: str = PriorKind.auto.value, truncation: Optional[float] = None) -> Prior:
    """kind: one of PriorKind's values (checked by SamplingRequest); `auto` takes the prior the
    model card recommends, else standard. truncation: a radius for the standard-normal draws, 0 for
    none, None for the card's recommendation (else none)."""
    kind = recommended(weights, "prior", None if kind == PriorKind.auto.value else kind, "standard")
    radius = float(recommended(weights, "truncation", truncation, 0)) or None
    card = card_path(weights) if truncation is None and radius else None
    if kind == PriorKind.standard.value:
        return Prior(truncation=radius, truncation_card=card)
    return Prior(kind, prior_table(weights, kind), radius, card)


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

    def __repr__(self) -> str:
        """The settings a user reads, by name: no prior arrays, no verifier's model card."""
        verifier = f", verifier={verifier_name(self.classifier)}" if self.classifier is not None else ""
        return (
            f"Sampling(prior={self.prior!r}, temperature={self.temperature:g}, sharpen={self.sharpen:g}, "
            f"min_confidence={self.min_confidence:g}{verifier}, precision={self.precision})"
        )

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


UNVERIFIED = SamplingRequest(min_confidence=0)  # the card's settings for a decoder: no verifier loaded


def resolve_sampling(weights: Weights, request: SamplingRequest = SamplingRequest()) -> Sampling:
    """The one place sampling settings are decided, from what was asked (`request`) and the card:
    every None takes the model card's recommendation, else the library default. The verifier
    (`classifier` None) is the model's own companion classifier when its card records one (a path
    relative to the model's directory), else the shipped classifier. A card that verifies by
    default names the way out when its classifier is missing; a classifier whose classes differ
    from the model's is refused."""
    asked = request.min_confidence
    threshold = float(recommended(weights, "min_confidence", asked, 0))
    verifier = sampling_verifier(weights, request.classifier, card_default=asked is None) if threshold else None
    return Sampling(
        prior=make_prior(weights, request.prior, request.truncation),
        temperature=float(recommended(weights, "temperature", request.temperature, DEFAULT_TEMPERATURE)),
        sharpen=float(recommended(weights, "sharpen", request.sharpen, DEFAULT_SHARPEN)),
        min_confidence=threshold,
        classifier=verifier,
        min_confidence_card=card_path(weights) if asked is None and threshold else None,
        precision=request.precision,
    )
