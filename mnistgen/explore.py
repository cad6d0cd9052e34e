"""Latent-space exploration: interpolation paths, 2-D manifold grids, encoding. Returns arrays.

Everything that needs "the data" - class centroids, the range of encoder means - reads the
model card's `latent_stats`, written at training time, so these work with no dataset present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from mnistgen import export, settings, sources
from mnistgen.checkpoint import Weights
from mnistgen.data import one_hot, shown
from mnistgen.decoders import decode_all, pad_rows
from mnistgen.errors import MnistgenError
from mnistgen.export import IMAGE_SIDE
from mnistgen.model import inputs, paddle
from mnistgen.runtime import human_bytes_apart, memory_budget, place_of

# Images per encoder call. Every call gets a whole block (the last padded), because Paddle's CPU
# kernels round differently for some batch sizes (odd ones differ in the 7th digit): so an image's
# mean never depends on how many images were encoded with it, nor on its place among them.
ENCODE_BLOCK = 256
SLERP_EPS = 1e-6  # below this angle slerp is lerp
# Enlarged copies of a walk held at once, by --to (measured peaks, 12,001 frames at --scale 4, rounded
# up): the enlarged frames and then the frame being written; the GIF's palette frames and encoder;
# the PNG strip, its picture and its encoder.
WALK_COPIES = {"frames": 2, "gif": 4, "png": 5}
FLOAT_BYTES = 4  # a float32 latent or one-hot value


# -- paths ------------------------------------------------------------------------------------


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return (1 - t)[:, None] * a[None] + t[:, None] * b[None]


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation (Shoemake 1985; White, "Sampling Generative Networks", 2016):
    keeps intermediate points at a typical distance from the origin of a Gaussian prior. The
    direction moves along the great circle from a to b, the radius evenly from |a| to |b|; opposite
    points, which no one great circle joins, go through the axis least aligned with a."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < SLERP_EPS or nb < SLERP_EPS:
        return lerp(a, b, t)
    u, w = a / na, b / nb
    omega = np.arccos(np.clip(np.dot(u, w), -1.0, 1.0))
    if omega < SLERP_EPS or len(a) == 1:  # the same direction; or a 1-D latent, which has no circle
        return lerp(a, b, t)
    radius = ((1 - t) * na + t * nb)[:, None]
    if np.pi - omega < SLERP_EPS:
        v = np.eye(len(a))[np.argmin(np.abs(u))]
        v = v - np.dot(v, u) * u
        v /= np.linalg.norm(v)  # (D,) perpendicular to a: the half circle turns through it
        return radius * (np.cos(np.pi * t)[:, None] * u[None] + np.sin(np.pi * t)[:, None] * v[None])
    return radius * (np.sin((1 - t) * omega)[:, None] * u[None] + np.sin(t * omega)[:, None] * w[None]) / np.sin(omega)


METHODS = {"lerp": lerp, "slerp": slerp}  # interpolate --method


def check_method(method: str) -> str:
    if method not in METHODS:
        raise MnistgenError(f"method {method!r}: use one of {', '.join(METHODS)}")
    return method


def path(points: np.ndarray, steps: int, method: str = "lerp", loop: bool = False) -> np.ndarray:
    """Frames along a path through `points` (K, D): `steps` frames per segment, the last point
    included; with `loop`, the path returns to its start and the start is not repeated, so the
    frames cycle seamlessly."""
    points = np.asarray(points, dtype=np.float64)
    if loop and len(points) > 1:
        points = np.concatenate([points, points[:1]])
    move = METHODS[check_method(method)]
    t = np.arange(steps) / steps
    frames = [move(points[i], points[i + 1], t) for i in range(len(points) - 1)]
    if not loop:
        frames.append(points[-1:])
    return np.concatenate(frames).astype(np.float32)


def frame_count(anchors: int, steps: int, loop: bool) -> int:
    """How many frames `path` makes through `anchors` points."""
    return anchors * steps if loop and anchors > 1 else (anchors - 1) * steps + 1


def check_labels(weights: Weights, labels, option: str) -> None:
    """Refuse a label the model has no place for in its one-hot (a VAE: no class centroid)."""
    classes = weights.config.num_classes
    for label in _items(labels):
        if not settings.is_whole(label):
            _not_a_label(weights, label, option)
        if not 0 <= label < classes:
            raise MnistgenError(f"{option} {label}: model {weights.name} knows labels 0-{classes - 1} only")


def label_indices(weights: Weights, values, option: str) -> list[int]:
    """Labels given as indices or as the model's class names (as generate --class takes them), checked."""
    names = weights.class_names
    found = []
    for value in _items(values):
        found.append(names.index(value) if isinstance(value, str) and value in names else value)
    check_labels(weights, found, option)
    return [int(label) for label in found]


def _items(values) -> list:
    """One label or a sequence of them as a list of Python values (a list is not cast: [0, "a"] keeps its 0)."""
    return list(values) if isinstance(values, (list, tuple)) else np.atleast_1d(values).tolist()


def label_index(weights: Weights, value, option: str) -> int:
    """One label (as label_indices takes them): a list of several is refused, not cut to its first."""
    found = label_indices(weights, value, option)
    if len(found) != 1:
        raise MnistgenError(f"{option} takes one label, got {len(found)}: pass one")
    return found[0]


def _not_a_label(weights: Weights, value, option: str) -> None:
    names = weights.class_names
    raise MnistgenError(
        f"{option} {value!r} is not a label of model {weights.name}: pass an index 0-{len(names) - 1} or one of its "
        f"classes ({shown(names)})"
    )


# -- memory -----------------------------------------------------------------------------------


def walk_bytes(weights: Weights, frames: int, scale: int, to: str) -> int:
    """What a walk of `frames` frames enlarged by `scale`, written as `to`, holds at once: latents
    and labels, the decoded 28x28 frames, and WALK_COPIES[to] enlarged copies."""
    cfg, side = weights.config, IMAGE_SIDE * scale
    return frames * (FLOAT_BYTES * (cfg.latent + cfg.num_classes) + IMAGE_SIDE**2 + WALK_COPIES[to] * side * side)


def grid_panels(config, digit: Optional[int]) -> int:
    """Panels of a grid picture: one per class for a conditional model without a digit, else one."""
    return 1 if digit is not None or not config.conditional else config.num_classes


def grid_bytes(n: int, panels: int, scale: int) -> int:
    """What `manifold` holds at once for `panels` grids of n x n enlarged by `scale` (a preview grid's count)."""
    return export.GridWriter.held_bytes(panels * n * n, panels * n, scale)


def check_memory(need: int, what: str, fix: str) -> None:
    """Refuse a picture that would hold more than an output may (runtime.memory_budget), before any work."""
    budget, source = memory_budget()
    if need > budget:
        held, allowed = human_bytes_apart(need, budget)
        raise MnistgenError(
            f"{what} would hold {held} in memory, more than the {allowed} an output may use ({source}): {fix}"
        )


def check_walk_memory(weights: Weights, anchors: int, steps: int, loop: bool) -> None:
    """Refuse a walk whose latents and frames alone would not fit (the Python API's steps has no
    cap; interpolate's --steps has, and the CLI also counts the enlarged copies it writes)."""
    frames = frame_count(anchors, steps, loop)
    fix = "use fewer steps, or fewer stops to walk through"  # digits, points or images
    check_memory(walk_bytes(weights, frames, 1, "frames"), f"a walk of {frames:,} frames", fix)


def centroids(weights: Weights, labels: list[int]) -> np.ndarray:
    """Per-class mean of the encoder means on training data, from the model card."""
    stats = _stats(weights)
    table = stats.get("centroids", {})
    missing = [label for label in labels if str(label) not in table]
    if missing and not weights.config.conditional:
        raise MnistgenError(
            f"model {weights.name} is an unconditional VAE: its training images had no labels to walk between; "
            "pass --points, --images or --grid"
        )
    if missing and table:
        raise MnistgenError(
            f"model {weights.name} saw no training images of digit {missing[0]} (it was trained on "
            f"{', '.join(sorted(table, key=int))}): walk between those"
        )
    if missing:
        raise MnistgenError(
            f"model {weights.name} has no latent centroid for digit {missing[0]} in its card: retrain it with this "
            "mnistgen"
        )
    return np.array([table[str(label)] for label in labels], dtype=np.float32)


def _stats(weights: Weights) -> dict:
    stats = weights.card.get("latent_stats")
    if not stats:
        raise MnistgenError(
            f"model {weights.name} has no latent statistics in its card: retrain it with mnistgen train, or pass "
            "--points / --bounds"
        )
    return stats


# -- grids ------------------------------------------------------------------------------------


@dataclass
class GridSpec:
    n: int  # images per side
    x: tuple[float, float]  # range of the horizontal latent dimension
    y: tuple[float, float]  # range of the vertical one (top row = high y, as the tutorial draws it)
    dims: tuple[int, int] = (0, 1)  # which latent dimensions vary; the others stay at 0


def data_bounds(weights: Weights, dims: tuple[int, int]) -> tuple[tuple[float, float], tuple[float, float]]:
    """The range of the encoder means on training data, from the card: 1st to 99th percentile
    (the tutorial's min..max over 1,000 images, without the few outliers that squeeze the
    middle of the picture when 10,000 images are encoded)."""
    stats = _stats(weights)
    lo, hi = stats.get("mean_p01", stats.get("mean_min")), stats.get("mean_p99", stats.get("mean_max"))
    if lo is None or hi is None:  # a card with priors but no ranges (checkpoint checks the ranges it has)
        raise MnistgenError(
            f"model {weights.name} records no range of its latents in its card: pass --bounds, or retrain it with "
            "mnistgen train"
        )
    return (lo[dims[0]], hi[dims[0]]), (lo[dims[1]], hi[dims[1]])


def grid_latents(spec: GridSpec, latent: int) -> np.ndarray:
    """(n*n, latent) row-major: x increases left to right, y decreases top to bottom."""
    xs = np.linspace(spec.x[0], spec.x[1], spec.n)
    ys = np.linspace(spec.y[1], spec.y[0], spec.n)
    z = np.zeros((spec.n * spec.n, latent), dtype=np.float32)
    z[:, spec.dims[0]] = np.tile(xs, spec.n)
    z[:, spec.dims[1]] = np.repeat(ys, spec.n)
    return z


# -- encoding ---------------------------------------------------------------------------------


def encode(model, images: np.ndarray, labels: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 28, 28) [+ int labels (N,) for a CVAE] -> encoder means and standard
    deviations, float32 (N, d) each."""

    cfg = model.cfg
    if cfg.conditional and labels is None:
        raise MnistgenError(
            "this model is conditional: its encoder needs each image's label; pass labels (--labels), or use a "
            "source that has labels"
        )
    means, stds = [], []
    model.eval()
    with paddle.no_grad():
        for start in range(0, len(images), ENCODE_BLOCK):
            part = slice(start, start + ENCODE_BLOCK)
            kept = len(images[part])
            block = pad_rows(images[part], ENCODE_BLOCK)  # (ENCODE_BLOCK, 28, 28): whole, the last padded
            block_labels = None if labels is None else pad_rows(labels[part], ENCODE_BLOCK, repeat_last=True)
            mean, logvar = model.encoder(*inputs(block, block_labels, cfg, place_of(model)))
            means.append(mean.numpy()[:kept])
            stds.append(np.exp(0.5 * logvar.numpy()[:kept]))
    return np.concatenate(means), np.concatenate(stds)


def reconstruct(model, decoder, images: np.ndarray, labels: Optional[np.ndarray]) -> np.ndarray:
    """Decode the encoder means: uint8 (N, 28, 28)."""

    means, _ = encode(model, images, labels)
    onehot = one_hot(labels, model.cfg.num_classes) if model.cfg.conditional else None
    return decode_all(decoder, means, onehot)


# -- what interpolate decodes ---------------------------------------------------------------

STREAM_INTERPOLATE = 20  # keeps interpolation's random z apart from generate's


def fixed_z(latent: int, seed: Optional[int]) -> np.ndarray:
    """The z held fixed during a label morph: the prior's mean, or a prior sample for --seed."""
    if seed is None:
        return np.zeros(latent, np.float32)
    return np.random.default_rng([seed, STREAM_INTERPOLATE]).standard_normal(latent, dtype=np.float32)


def walk(
    weights: Weights,
    steps: int,
    method: str,
    loop: bool,
    *,
    digits=None,
    means=None,
    points=None,
    label: Optional[int] = None,
    labels=None,
    seed: Optional[int] = None,
) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Latents (F, d) and label vectors (F, C) or None, for a path through one kind of endpoint:

    digits  CVAE: the label morphs from digit to digit at a fixed z; VAE: class centroids
    means   encoder means of real images (CVAE: with their `labels`, blended along the way)
    points  latent coordinates (CVAE: with the fixed `label`)
    """
    cfg = weights.config
    check_method(method)  # a CVAE's label morph is straight whatever the method: check it anyway
    if digits is not None:
        check_labels(weights, digits, "--digits")
        stops = len(_items(digits))
        if stops < 2:
            raise MnistgenError("--digits needs at least two digits to walk between, e.g. 3,8")
        check_walk_memory(weights, stops, steps, loop)
        if cfg.conditional:
            onehot = path(one_hot(digits, cfg.num_classes), steps, "lerp", loop)
            return np.repeat(fixed_z(cfg.latent, seed)[None], len(onehot), axis=0), onehot
        return path(centroids(weights, digits), steps, method, loop), None
    anchors = np.asarray(means, dtype=np.float32) if means is not None else _anchors(points)
    if anchors.shape[1] != cfg.latent:
        raise MnistgenError(
            f"--points have {anchors.shape[1]} coordinates but model {weights.name} has a {cfg.latent}-d latent: "
            f"give {cfg.latent} numbers per point"
        )
    check_walk_memory(weights, len(anchors), steps, loop)
    z = path(anchors, steps, method, loop)
    if not cfg.conditional:
        return z, None
    if labels is None:
        if label is None:
            raise MnistgenError(
                f"model {weights.name} is conditional: pass --digit D to choose the label decoded along the path"
            )
        check_labels(weights, label, "--digit")
        labels = [label] * len(anchors)
    check_labels(weights, labels, "label")
    return z, path(one_hot(labels, cfg.num_classes), steps, "lerp", loop)


def _anchors(points) -> np.ndarray:
    """Latent points (K, d), K at least 2, finite: the CLI's --points parsed, or an array from Python."""
    try:
        anchors = np.asarray(points, dtype=np.float32)
    except (TypeError, ValueError):
        anchors = np.zeros(0, np.float32)
    if anchors.ndim != 2 or len(anchors) < 2 or not np.isfinite(anchors).all():
        raise MnistgenError(
            f"points {points!r}: pass at least two latent points as an array (K, d) of finite numbers, e.g. "
            '[[-2, 0], [2, 0]] (--points "-2,0;2,0")'
        )
    return anchors


def _grid_range(bounds, sigma) -> Optional[tuple[tuple[float, float], tuple[float, float]]]:
    """The grid's ranges from `bounds` (x1, x2, y1, y2) or `sigma` (+-sigma on both), each checked;
    None: neither given (the card's data range)."""
    if bounds is not None and sigma is not None:
        raise MnistgenError("give bounds or sigma, not both")  # the CLI refuses --bounds with --sigma first
    if bounds is not None:
        try:
            x1, x2, y1, y2 = (float(v) for v in bounds)
        except (TypeError, ValueError):
            x1 = x2 = y1 = y2 = float("nan")
        if not np.isfinite([x1, x2, y1, y2]).all() or x1 == x2 or y1 == y2:
            raise MnistgenError(
                f"--bounds {bounds!r}: give four numbers x1,x2,y1,y2 with x1 != x2 and y1 != y2, e.g. -3,3,-3,3"
            )
        return (x1, x2), (y1, y2)
    if sigma is not None:
        if not settings.is_number(sigma) or not 0 < sigma < float("inf"):
            raise MnistgenError(f"--sigma {sigma!r}: give a positive number of prior standard deviations, e.g. 3")
        return (-sigma, sigma), (-sigma, sigma)
    return None


def image_anchors(weights: Weights, model, found: sources.Images, digit: Optional[int] = None) -> dict:
    """`walk` arguments for a path between the encoder means of real images (`found`, as
    api.Model.read gives them: the source's labels or the given ones). A CVAE needs labels: those,
    else `digit`; a VAE takes none."""
    if len(found.images) < 2:
        raise MnistgenError(
            f"--images holds {len(found.images)} image: a walk needs at least two, e.g. a.png,b.png or a folder of them"
        )
    conditional = weights.config.conditional
    known = found.labels if conditional else None
    if conditional and known is None and digit is not None:
        check_labels(weights, digit, "--digit")
        known = np.full(len(found.images), digit)
    if known is not None:
        check_labels(weights, known, "label")
    means, _ = encode(model, found.images, known)
    return {"means": means, "labels": known, "label": digit}


def check_unlabelled_walk(weights: Weights, digit: Optional[int], labels) -> None:
    """A VAE's walk has no label to hold or to give its images: refuse them rather than drop them."""
    given = [name for name, value in (("--digit", digit), ("--labels", labels)) if value is not None]
    if given and not weights.config.conditional:
        raise MnistgenError(
            f"model {weights.name} is an unconditional VAE and has no labels: drop {' and '.join(given)}"
        )


def image_labels(labels, count: int) -> np.ndarray:
    """`labels` for `count` images: one for all, or one per image (as encode takes them)."""
    if len(labels) not in (1, count):
        raise MnistgenError(f"--labels has {len(labels)} values for {count} images: give one for all, or one per image")
    return np.resize(np.asarray(labels, dtype=np.int64), count)


def grid(
    weights: Weights, n: int, dims: tuple[int, int], digit: Optional[int], bounds=None, sigma: Optional[float] = None
):
    """Latents (n*n, d) and labels for the tutorial's manifold picture; returns (z, onehot, spec).
    A conditional model without `digit` gets the grid once per class, class-major (P*n*n, d)."""
    cfg = weights.config
    if cfg.latent < 2:
        raise MnistgenError(
            f"model {weights.name} has a 1-d latent and a grid sweeps two dimensions: walk it with --points instead"
        )
    if max(dims) >= cfg.latent or dims[0] == dims[1]:
        raise MnistgenError(
            f"--dims {dims[0]},{dims[1]}: model {weights.name} has latent dimensions 0-{cfg.latent - 1}; give two "
            "different ones"
        )
    x, y = _grid_range(bounds, sigma) or data_bounds(weights, dims)
    spec = GridSpec(n, x, y, dims)
    z = grid_latents(spec, cfg.latent)
    if not cfg.conditional:
        if digit is not None:
            raise MnistgenError(f"model {weights.name} is an unconditional VAE and has no labels: drop --digit")
        return z, None, spec
    if digit is None:  # the tutorial draws a CVAE's manifold per digit: one panel for each
        labels = np.repeat(np.arange(cfg.num_classes), len(z))
        return np.tile(z, (cfg.num_classes, 1)), one_hot(labels, cfg.num_classes), spec
    check_labels(weights, digit, "--digit")
    return z, one_hot(np.full(len(z), digit), cfg.num_classes), spec


def manifold(
    weights: Weights,
    decoder,
    n: int,
    dims: tuple[int, int] = (0, 1),
    digit: Optional[int] = None,
    bounds=None,
    sigma: Optional[float] = None,
) -> tuple[np.ndarray, GridSpec]:
    """The tutorial's manifold picture, uint8: an n x n grid of decoded latents over two
    dimensions; for a conditional model without `digit`, one labelled panel per class."""
    z, onehot, spec = grid(weights, n, dims, digit, bounds, sigma)
    tiles = decode_all(decoder, z, onehot).reshape(-1, n, n, IMAGE_SIDE, IMAGE_SIDE)  # (P, n, n, 28, 28)
    if len(tiles) == 1:
        return export.tile(tiles[0]), spec
    names = weights.card.get("classes") or [str(i) for i in range(len(tiles))]
    return export.panels([export.tile(t) for t in tiles], names), spec
