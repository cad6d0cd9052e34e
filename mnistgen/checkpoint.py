"""Weights files: safetensors for tensors, a JSON model card beside them; never pickle.

A model `NAME` is the pair `NAME.safetensors` + `NAME.json`. The card carries the
`ModelConfig`, training record, test metrics and latent statistics; the safetensors
metadata carries the config too, so a lone .safetensors file still describes itself.
Everything is checked before tensors are read: the format version, the config's sizes, the
JSON type of the card's sections, every tensor's name, dtype and shape against the config, the
byte ranges against the file size, and the file's sha256 against the card. Loading a
stranger's file runs no code.

Pure Python plus numpy for the final read; no Paddle.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from mnistgen import atomic, untrusted
from mnistgen.config import DEFAULT_CLASSIFIER, DEFAULT_JUDGE, ModelConfig, config_from_dict
from mnistgen.errors import MnistgenError

FORMAT = "mnistgen-weights"
FORMAT_VERSION = 1
WEIGHTS_SUFFIX = ".safetensors"
CARD_SUFFIX = ".json"
RUN_MODEL_STEM = "model"  # a run directory holds model.safetensors + model.json
RUN_METRICS_FILE = "metrics.jsonl"  # and its metrics, one line per epoch: what marks it as a run
WEIGHTS_ENV = "MNISTGEN_WEIGHTS"
INTERNAL_STEMS = ("train_state",)  # resume state in a run directory, not a model
METADATA_KEY = "mnistgen_config"
PICKLE_SUFFIXES = (".pdparams", ".pdopt", ".pdmodel", ".pkl", ".pickle", ".pt", ".pth", ".ckpt")
HEADER_LEN_BYTES = 8
MAX_HEADER_BYTES = 16 * 1024 * 1024  # a safetensors header is a few KB; refuse absurd ones
DTYPE_BYTES = {"F32": 4}
PICKLE_PROTO = b"\x80"  # a pickle starts with PROTO and a protocol number 2-5 (torch/paddle .pd* files)
PICKLE_VERSIONS = (b"\x02", b"\x03", b"\x04", b"\x05")
ZIP_MAGIC = b"PK"  # newer torch.save / paddle.save archives


@dataclass
class Weights:
    """A checked weights file."""

    path: Path  # the .safetensors file
    config: ModelConfig
    card: dict  # the JSON card (or a minimal one built from the safetensors metadata)
    sha256: str  # of the .safetensors file

    def __repr__(self) -> str:
        """Which weights, not the card (its latent statistics run to thousands of numbers)."""
        return f"<mnistgen Weights {self.name}: {self.config.kind}, {self.path}, sha256 {self.sha256[:12]}>"

    @property
    def name(self) -> str:
        return self.card.get("name") or self.path.stem

    @property
    def is_classifier(self) -> bool:
        return self.config.kind == "classifier"

    @property
    def class_names(self) -> list[str]:
        """The names of labels 0..num_classes-1: the card's classes, else each label's number."""
        from mnistgen.data import label_names  # numpy: not at import, inspect stays cheap

        return label_names(self.card.get("classes"), self.config.num_classes)

    def arrays(self) -> dict:
        """Read the tensors: name -> float32 numpy array."""
        from safetensors.numpy import load

        try:
            return load(self.path.read_bytes())
        except Exception as exc:  # safetensors raises its own error types
            raise MnistgenError(
                f"{self.path} cannot be read as safetensors ({exc}): the file is damaged; train or download it again"
            ) from None


def shipped_dir() -> Path:
    """Where the weights that come with mnistgen live (package data, or the checkout's weights/)."""
    spec = importlib.util.find_spec("mnistgen.shipped")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(__file__).resolve().parent.parent / "weights"


def search_dirs() -> list[Path]:
    extra = [Path(p).expanduser() for p in os.environ.get(WEIGHTS_ENV, "").split(os.pathsep) if p]
    return extra + [shipped_dir()]


def is_run_dir(path: Path) -> bool:
    """A training run's directory: model.safetensors + model.json and its metrics (beside them, a
    companion and the resume state); a folder of weights that holds a model.safetensors is not one."""
    found = [RUN_MODEL_STEM + WEIGHTS_SUFFIX, RUN_MODEL_STEM + CARD_SUFFIX, RUN_METRICS_FILE]
    return all((path / name).is_file() for name in found)


def _offered(directory: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """What a search directory offers by name: its weights files by stem, and its run directories by
    their names (a run directory itself: its own name; its files' stems, model and its companion
    classifier, are no names)."""
    try:
        if not directory.is_dir():
            return {}, {}
        if is_run_dir(directory):
            return {}, {directory.resolve().name: directory / (RUN_MODEL_STEM + WEIGHTS_SUFFIX)}
        files = {p.stem: p for p in sorted(directory.glob("*" + WEIGHTS_SUFFIX)) if p.stem not in INTERNAL_STEMS}
        subfolders = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:  # an unreadable folder offers nothing; it must not stop the shipped names
        return {}, {}
    return files, {p.name: p / (RUN_MODEL_STEM + WEIGHTS_SUFFIX) for p in subfolders if is_run_dir(p)}


def named_weights() -> dict[str, Path]:
    """Every name --model finds: weights files ($MNISTGEN_WEIGHTS first, then the shipped ones), then
    run directories under any name not taken (a run called runs/cvae never hides the shipped cvae)."""
    table: dict[str, Path] = {}
    runs: dict[str, Path] = {}
    for directory in search_dirs():
        files, found = _offered(directory)
        for name, path in files.items():
            table.setdefault(name, path)
        for name, path in found.items():
            runs.setdefault(name, path)
    for name, path in runs.items():
        table.setdefault(name, path)
    return table


def available_names() -> list[str]:
    return sorted(named_weights())


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or Path(spec).suffix in (WEIGHTS_SUFFIX, CARD_SUFFIX, *PICKLE_SUFFIXES)


def resolve(spec: str) -> Path:
    """`--model NAME|PATH` -> the .safetensors path. Raises MnistgenError naming the fix."""
    if not spec or not spec.strip():
        raise MnistgenError(
            f"--model is empty: give a model name ({', '.join(available_names()) or 'none found'}) or a path"
        )
    path = Path(spec).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise MnistgenError(
            f"{spec} is a pickle-based file: mnistgen loads only .safetensors + .json weights, because unpickling a "
            "file can run arbitrary code"
        )
    if path.is_dir():
        path = path / (RUN_MODEL_STEM + WEIGHTS_SUFFIX)
    elif path.suffix == CARD_SUFFIX:
        path = path.with_suffix(WEIGHTS_SUFFIX)
    if path.is_file() or untrusted.special_kind(path):  # a FIFO is found here and refused by inspect
        return path
    if not _looks_like_path(spec):
        candidate = named_weights().get(spec)
        if candidate is not None:
            return candidate
        known = ", ".join(available_names()) or "none found"
        raise MnistgenError(f"unknown model {spec!r}: use one of {known}, or a path to a .safetensors file")
    raise MnistgenError(
        f"no weights file at {path}: check the path (a .safetensors file, its .json card, or a run directory)"
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_header(path: Path) -> dict:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(HEADER_LEN_BYTES)
        (length,) = struct.unpack("<Q", head) if len(head) == HEADER_LEN_BYTES else (0,)
        plausible = 0 < length <= min(MAX_HEADER_BYTES, size - HEADER_LEN_BYTES)
        first = f.read(1) if plausible else b""
        if first != b"{":
            if head[:1] == PICKLE_PROTO and head[1:2] in PICKLE_VERSIONS or head[:2] == ZIP_MAGIC:
                raise MnistgenError(
                    f"{path} is a pickle/zip file, not safetensors: mnistgen refuses it because unpickling can run code"
                )
            if len(head) < HEADER_LEN_BYTES:
                raise MnistgenError(
                    f"{path} is truncated (shorter than a safetensors header): train or download it again"
                )
            raise MnistgenError(f"{path} is not a safetensors file (or is truncated): train or download it again")
        try:
            header = untrusted.loads(first + f.read(length - 1))
        except ValueError:
            raise MnistgenError(f"{path} is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise MnistgenError(f"{path} is not a safetensors file (its header is not a JSON object)")
    header["__file_size__"] = size - HEADER_LEN_BYTES - length
    return header


def is_count(value) -> bool:
    """A JSON whole number >= 0 (not a bool, not 3.0): a size or a byte offset."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tensor_entry(path: Path, name: str, info) -> tuple[str, tuple, tuple]:
    """A header entry's (dtype, shape, (begin, end)), refused unless every field has its JSON type."""
    fields = info if isinstance(info, dict) else {}
    dtype, shape, offsets = fields.get("dtype"), fields.get("shape"), fields.get("data_offsets")
    if not (
        isinstance(dtype, str)
        and isinstance(shape, list)
        and all(is_count(s) for s in shape)
        and isinstance(offsets, list)
        and len(offsets) == 2
        and all(is_count(o) for o in offsets)
        and offsets[0] <= offsets[1]
    ):
        raise MnistgenError(
            f"{path} has a damaged header (tensor {name}'s dtype, shape or data_offsets is malformed): train or "
            "download it again"
        )
    return dtype, tuple(shape), tuple(offsets)


def _check_tensors(path: Path, header: dict, config: ModelConfig) -> None:
    """Every tensor the config needs, as F32 of its shape, the byte ranges back to back over the
    data (as safetensors requires), nothing else."""
    expected = config.param_shapes()
    found = {k: v for k, v in header.items() if not k.startswith("__")}
    if set(found) != set(expected):
        missing = sorted(set(expected) - set(found))[:3]
        extra = sorted(set(found) - set(expected))[:3]
        raise MnistgenError(
            f"{path} does not match its model card ({config.kind}, latent {getattr(config, 'latent', '-')}): missing "
            f"{missing}, unexpected {extra}; it is another architecture"
        )
    data_size = header["__file_size__"]
    ranges = []
    for name, info in found.items():
        dtype, shape, (begin, end) = _tensor_entry(path, name, info)
        if dtype not in DTYPE_BYTES or shape != expected[name]:
            raise MnistgenError(
                f"{path}: tensor {name} is {dtype} {list(shape)}, the card's config needs F32 "
                f"{list(expected[name])}; it is another architecture"
            )
        count = 1
        for s in shape:
            count *= s
        if end - begin != count * DTYPE_BYTES["F32"] or end > data_size:
            raise MnistgenError(
                f"{path} is truncated or damaged (tensor {name} runs past the end): train or download it again"
            )
        ranges.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(ranges):
        if begin != position:
            raise MnistgenError(
                f"{path} is damaged (tensor {name}'s bytes overlap another tensor or leave a gap): train or download "
                "it again"
            )
        position = end
    if position != data_size:
        raise MnistgenError(f"{path} is damaged (bytes after its last tensor): train or download it again")


def _metadata(path: Path, header: dict) -> dict:
    """The header's "__metadata__": text keys to text values (the safetensors format), or none."""
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise MnistgenError(
            f"{path} has a damaged header (its __metadata__ is not a map of text to text): train or download it again"
        )
    return meta


def _card_from_metadata(path: Path, header: dict) -> dict:
    meta = _metadata(path, header)
    if METADATA_KEY not in meta:
        raise MnistgenError(
            f"{path} has no model card ({path.with_suffix(CARD_SUFFIX).name}) and no mnistgen metadata: it was not "
            "written by mnistgen"
        )
    try:
        config = untrusted.loads(meta[METADATA_KEY])
    except ValueError:
        raise MnistgenError(f"{path} has damaged mnistgen metadata: train or download it again") from None
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "name": path.stem, "config": config}


# a list of numbers as json.dumps(indent=2) spreads it, one per line; a raw newline never occurs
# inside a JSON string, so text in a string that looks like a list is left alone
NUMBER_LIST = re.compile(r"\[\n\s*(-?[\d.eE+-]+(?:,\n\s*-?[\d.eE+-]+)*)\n\s*\]")


def write_card(path: Path, card: dict) -> None:
    """Write a model card atomically: indented JSON, with each list of numbers on one line."""
    text = NUMBER_LIST.sub(
        lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", json.dumps(card, indent=2)
    )
    atomic.write_text(path, text + "\n")


def read_card(path: Path) -> dict:
    try:
        card = untrusted.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # the first clause: Python's own advice (set_int_max_str_digits) is no fix
        raise MnistgenError(
            f"model card {path} is not valid JSON ({str(exc).split(';')[0]}): train or download the weights again"
        ) from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise MnistgenError(f'{path} is not an mnistgen model card (no "format": "{FORMAT}")')
    version = card.get("format_version")
    if not is_count(version) or version < 1:
        raise MnistgenError(
            f'{path} has a damaged "format_version" ({version!r}, not a whole number; this mnistgen writes '
            f"{FORMAT_VERSION}): train or download the weights again"
        )
    if version > FORMAT_VERSION:
        raise MnistgenError(
            f"{path} has card format version {version!r}, newer than this mnistgen reads ({FORMAT_VERSION}): upgrade "
            "mnistgen"
        )
    return card


# the JSON type of each card section a reader relies on (settings.py checks what "sampling" holds and
# sampling.py the prior tables of "latent_stats", where they are used)
CARD_SECTIONS = {
    "name": str,
    "sha256": str,
    "classes": list,
    "training": dict,
    "metrics": dict,
    "sampling": dict,
    "latent_stats": dict,
}
JSON_TYPES = {str: "text", list: "a list", dict: "an object", int: "a number", float: "a number", bool: "true/false"}


def _json_type(value) -> str:
    return "null" if value is None else JSON_TYPES.get(type(value), type(value).__name__)


# "latent_stats" (priors.latent_stats) holds, besides the prior tables sampling.py checks where it
# uses them: per-dimension vectors of the encoder means, and per-label centroids, which explore.py
# draws grids and walks between. A trained VAE's latent means lie within a few tens of 0: a
# statistic beyond MAX_LATENT_MAGNITUDE is damage, and would overflow float32 once drawn.
STATS_VECTORS = ("mean_min", "mean_max", "mean_p01", "mean_p99", "mean_std")
STATS_RANGE = (("mean_p01", "mean_min"), ("mean_p99", "mean_max"))  # each end of a grid: one of the pair
MAX_LATENT_MAGNITUDE = 1e6


def _latent_vector(value, latent: int) -> bool:
    """A list of `latent` finite JSON numbers of sane size."""
    return (
        isinstance(value, list)
        and len(value) == latent
        and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) <= MAX_LATENT_MAGNITUDE for v in value
        )
    )  # abs(nan) <= bound is False: NaN is refused with infinities


def _stats_problem(stats: dict, config) -> str:
    """What is wrong with a card's "latent_stats" for `config` ('' when nothing)."""
    latent = getattr(config, "latent", 0)
    bad = [key for key in STATS_VECTORS if key in stats and not _latent_vector(stats[key], latent)]
    if bad:
        return f"{bad[0]} is not {latent} finite numbers"
    if any(key in stats for key in STATS_VECTORS):
        missing = [pair for pair in STATS_RANGE if not any(key in stats for key in pair)]
        if missing:
            return f"it has neither {' nor '.join(missing[0])}"
    if "images" in stats and not is_count(stats["images"]):
        return "images is not a count"
    centroids = stats.get("centroids", {})
    labels = {str(label) for label in range(config.num_classes)}
    if not isinstance(centroids, dict) or not set(centroids) <= labels:
        return f"centroids is not an object keyed by labels 0..{config.num_classes - 1}"
    bad = [key for key, value in centroids.items() if not _latent_vector(value, latent)]
    return f"the centroid of label {bad[0]} is not {latent} finite numbers" if bad else ""


def check_card(card_path: Path, card: dict, config) -> None:
    """Refuse a card whose sections do not have their JSON types, or whose "classes" are not one
    name per label of the config: the card is not covered by the weights' sha256."""
    for key, kind in CARD_SECTIONS.items():
        if key in card and not isinstance(card[key], kind):
            raise MnistgenError(
                f'model card {card_path} has a damaged "{key}" ({_json_type(card[key])}, not '
                f"{JSON_TYPES[kind]}): train or download the weights again"
            )
    classes = card.get("classes") or []
    named = all(isinstance(c, str) and c.strip() for c in classes)
    if classes and (len(classes) != config.num_classes or not named or len(set(classes)) != len(classes)):
        raise MnistgenError(  # a blank or repeated name would make --class and class folders ambiguous
            f'model card {card_path} has damaged "classes": they must be {config.num_classes} distinct names (text), '
            "one per label; train or download the weights again"
        )


def check_latent_stats(card_path: Path, card: dict, config) -> None:
    """Refuse a card whose latent statistics do not fit its config (after the tensors are checked
    against the config: a card for another architecture is named as that first)."""
    problem = _stats_problem(card.get("latent_stats") or {}, config)
    if problem:
        raise MnistgenError(
            f'model card {card_path} has damaged "latent_stats" ({problem}): train or download the weights again'
        )


def inspect(spec: str) -> Weights:
    """Resolve and check a weights file without reading its tensors (cheap: no numpy, no Paddle)."""
    path = resolve(spec)
    untrusted.check_not_special(path, "weights file")  # a FIFO would block the header's read
    header = _read_header(path)
    _metadata(path, header)
    card_path = path.with_suffix(CARD_SUFFIX)
    card = read_card(card_path) if card_path.is_file() else _card_from_metadata(path, header)
    config = config_from_dict(card.get("config"))
    check_card(card_path, card, config)
    _check_tensors(path, header, config)
    check_latent_stats(card_path, card, config)
    digest = sha256_of(path)
    recorded = card.get("sha256")
    if recorded and recorded != digest:
        raise MnistgenError(
            f"{path} does not match the sha256 in its card {card_path.name}: the file was changed or damaged; train "
            "or download it again"
        )
    return Weights(path=path, config=config, card=card, sha256=digest)


def inspect_role(spec: str, option: str = "--model") -> Weights:
    """`inspect`, then check the weights fit their role: a VAE/CVAE for --model, a classifier for
    --classifier (other option names: any kind)."""
    weights = inspect(spec)
    if option == "--model" and weights.is_classifier:
        raise MnistgenError(f"{spec} is the classifier, not a generator: pass a VAE or CVAE to --model (e.g. cvae-2d)")
    if option in ("--classifier", "--judge") and not weights.is_classifier:
        example = DEFAULT_JUDGE if option == "--judge" else DEFAULT_CLASSIFIER
        raise MnistgenError(f"{spec} is a {weights.config.kind} generator, not a classifier: pass {option} {example}")
    return weights


def save(stem: Path, arrays: dict, card: dict) -> Weights:
    """Write `stem.safetensors` then `stem.json` (each atomically); returns the checked result."""
    from safetensors.numpy import save as save_bytes

    config = config_from_dict(card["config"])
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights_path = stem.with_name(stem.name + WEIGHTS_SUFFIX)
    payload = save_bytes(arrays, metadata={METADATA_KEY: json.dumps(config.to_dict())})
    atomic.write_bytes(weights_path, payload)
    card = {"format": FORMAT, "format_version": FORMAT_VERSION, **card, "sha256": hashlib.sha256(payload).hexdigest()}
    write_card(stem.with_name(stem.name + CARD_SUFFIX), card)
    return Weights(path=weights_path, config=config, card=card, sha256=card["sha256"])


# -- run directories ------------------------------------------------------------------------

STATE_STEM = "train_state"  # train_state.safetensors / .json: a run's model + Adam state, for --resume


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse a run directory that would be clobbered (or, with resume, holds nothing); creates nothing."""
    run_dir = Path(run_dir)
    state = run_dir / (STATE_STEM + WEIGHTS_SUFFIX)
    if resume:
        if not state.is_file():
            raise MnistgenError(f"--resume: {run_dir} holds no checkpoint ({state.name}): start without --resume")
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise MnistgenError(f"--out {run_dir} is a file: give a directory for the run")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if not state.is_file():  # e.g. a run that failed before its first checkpoint: nothing to resume
            raise MnistgenError(
                f"--out {run_dir} is not empty and holds no checkpoint to resume: choose a new directory, or empty it"
            )
        raise MnistgenError(
            f"--out {run_dir} is not empty: pass --resume to continue that run, or choose a new directory"
        )
    atomic.check_writable_dir(run_dir, "--out")  # before Paddle loads and the first epoch runs
