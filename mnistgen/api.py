"""The Python API: everything the CLI does, as calls that return numpy arrays and dicts.

    import mnistgen
    model = mnistgen.load("cvae")                          # a name, a .safetensors path or a run dir
    images, labels, z = model.generate(digit=7, count=100, seed=0)
    frames = model.interpolate(digits=[3, 8], steps=16)     # uint8 (F, 28, 28)
    means, stds = model.encode(images, labels)              # float32 (N, d) each
    picture, spec = model.grid(20)                          # the latent manifold, uint8
    report = model.evaluate(count=1000, data_dir="mnist/")      # what `mnistgen evaluate` prints
    metrics = mnistgen.fit("digits/", "runs/digits")        # what `mnistgen train` does, in this process

The CLI is a thin layer over these functions; images here are uint8 (N, 28, 28) with MNIST's
white-on-black convention, labels int64 (N,), latents float32 (N, d). Pixels equal what
`mnistgen generate` writes for the same seed, digit and index.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from mnistgen import checkpoint, data, decoders, explore, outputs, sample, scoring, sources, verifiers
from mnistgen import classifier as clf
from mnistgen import generate as jobs
from mnistgen import train as train_lib
from mnistgen.config import (
    DEFAULT_GENERATOR,
    DEFAULT_JUDGE,
    EVALUATE_RANGES,
    IMAGE_SIZE,
    MIN_GRID,
    TRAIN_RANGES,
    ClassifierConfig,
    Precision,
    PriorKind,
    SamplingRequest,
    TrainKind,
    TrainOptions,
    train_kind,
)
from mnistgen.errors import MnistgenError
from mnistgen.labels import check_request, check_seed, labels_for, requested_labels
from mnistgen.runtime import Device, keeps_device, on_device, resolve_device, select_device
from mnistgen.sampling import UNVERIFIED, Sampling, resolve_sampling
from mnistgen.settings import is_number, is_whole


def _on_its_device(names: str):
    """Class decorator: the named methods and properties (space-separated) run with Paddle's device
    set to the model's, and give the caller's back after (runtime.on_device): Paddle's device is the
    whole process's, and a host program's own tensors must stay on its device."""

    def wrap(function):
        @functools.wraps(function)
        def run(self, *args, **kwargs):
            with on_device(self.device):
                return function(self, *args, **kwargs)

        return run

    return _wrap_members(names, wrap)


def _wrap_members(names: str, wrap):
    """Class decorator: the named methods and properties (space-separated) replaced by wrap(function)."""

    def decorate(cls):
        for name in names.split():
            member = vars(cls)[name]
            is_property = isinstance(member, property)
            setattr(cls, name, property(wrap(member.fget), doc=member.__doc__) if is_property else wrap(member))
        return cls

    return decorate


def _named_keywords(names: str):
    """Class decorator: the named methods (space-separated) name a misspelt keyword with the ones
    there are (_check_known: `generate(digits=7)`), as fit, sampling and evaluate do, instead of
    Python's bare TypeError."""

    def wrap(function):
        known = [name for name in inspect.signature(function).parameters if name != "self"]

        @functools.wraps(function)
        def run(self, *args, **kwargs):
            _check_known(kwargs, known, f"Model.{function.__name__}")
            return function(self, *args, **kwargs)

        return run

    return _wrap_members(names, wrap)


@_named_keywords("sampler generate write decode interpolate grid read encode reconstruct evaluate")
@_on_its_device("net decoder sampler generate write decode interpolate grid encode reconstruct evaluate")
class Model:
    """A loaded, checked model and the fastest decoders for its device."""

    def __init__(self, weights: checkpoint.Weights, device: Union[Device, str] = Device.auto):
        self.weights = weights
        self.device = resolve_device(device)  # set for each call that runs Paddle (_on_its_device), not for good
        self._net = None
        self._decoders: dict = {}  # (sharpen, precision) -> decoder: each is built (and exported) once

    # -- what it is
    @property
    def name(self) -> str:
        return self.weights.name

    @property
    def config(self):
        """The `ModelConfig` (kind, latent, channels, num_classes)."""
        return self.weights.config

    @property
    def card(self) -> dict:
        """The JSON model card: training command, metrics, latent statistics, sampling advice."""
        return self.weights.card

    @property
    def sha256(self) -> str:
        return self.weights.sha256

    @property
    def net(self):
        """The Paddle `VAE` layer (encoder and decoder), loaded on first use."""
        if self._net is None:
            self._net = decoders.load_model(self.weights)
        return self._net

    @property
    def decoder(self):
        """The decoder with the card's sampling settings."""
        return self._decoder(resolve_sampling(self.weights, UNVERIFIED))

    def _decoder(self, sampling: Sampling):
        key = decoders.DecoderKey.of(sampling)
        if key not in self._decoders:
            self._decoders[key] = decoders.make_decoder(self.weights, self.device, sampling)
        return self._decoders[key]

    def sampling(self, **options) -> Sampling:
        """The resolved sampling spec for these options (config.SamplingRequest's fields; see
        `sampling.resolve_sampling`): None takes the model card's recommendation, as `mnistgen generate` does."""
        _check_known(options, SAMPLING_KEYWORDS, "sampling")
        return resolve_sampling(self.weights, SamplingRequest(**options))

    def sampler(self, sampling: Optional[Sampling] = None) -> sample.Sampler:
        """The decoder and confidence filter that draw images as `sampling` (default: the card's) says."""
        sampling = sampling or self.sampling()
        return sample.Sampler(self._decoder(sampling), sampling, decoders.confidence_filter(sampling, self.device))

    def __repr__(self) -> str:
        c = self.config
        return f"<mnistgen.Model {self.name}: {c.kind}, latent {c.latent}, {self.device}>"

    # -- sampling
    def generate(
        self,
        digit: Optional[Union[int, Sequence[int]]] = None,
        count: int = 100,
        seed: int = 0,
        temperature: Optional[float] = None,
        prior: str = PriorKind.auto.value,
        truncation: Optional[float] = None,
        min_confidence: Optional[float] = None,
        classifier: Optional[str] = None,
        sharpen: Optional[float] = None,
        precision: str = Precision.auto.value,
        classes: Optional[Union[str, Sequence[str]]] = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`count` images per label: `digit` (indices) or `classes` (the card's names, as --class),
        by default every label it trained on (an unconditional model takes neither). The sampling
        options are generate's: None takes the card's choice. Returns images uint8 (N, 28, 28),
        labels int64 (N,) (-1 when unlabelled), latents float32 (N, d), label-major in label order
        as generate writes them (`digit=[7, 3]`: the 3s first)."""
        check_request(count, seed)
        digits = requested_labels(self.weights, digit, classes, "digit")
        spec = resolve_sampling(self.weights, SamplingRequest.among(locals()))  # the sampling keywords, as given
        return self.sampler(spec).arrays(labels_for(self.weights, digits), count, seed)

    def write(self, job: outputs.Job, on_progress: Optional[Callable[[int, float, float], None]] = None) -> dict:
        """Run a planned generate job (`generate.plan_job` for this model): write its files; returns
        the summary. on_progress(images written, images/s, share of candidates the verifier kept)."""
        if job.weights.sha256 != self.weights.sha256:
            raise MnistgenError(
                f"the job was planned for model {job.weights.name}, not {self.name}: its files would record the "
                f"wrong model; plan it with {self.name}'s weights (Model.weights)"
            )
        return jobs.run_job(job, self.sampler(job.sampling), on_progress)

    def decode(self, z: np.ndarray, labels: Optional[Sequence[int]] = None) -> np.ndarray:
        """Latents float (N, d) [+ labels for a CVAE: one for all, or one per latent] -> uint8 images (N, 28, 28)."""
        z = np.asarray(z, dtype=np.float32)
        z = z[None] if z.shape == (self.config.latent,) else z
        if z.ndim != 2 or z.shape[1] != self.config.latent or not len(z):
            raise MnistgenError(
                f"z has shape {z.shape}: model {self.name} decodes (N, {self.config.latent}) latents, N at least 1"
            )
        if not np.isfinite(z).all():
            raise MnistgenError("z holds NaN or infinite values: decode finite latents")
        chosen = self._labels(labels, len(z))
        if self.config.conditional and chosen is None:
            raise MnistgenError(f"model {self.name} is conditional: pass labels")
        onehot = None if chosen is None else data.one_hot(chosen, self.config.num_classes)
        return decoders.decode_all(self.decoder, z, onehot)

    def _labels(self, labels, count: int) -> Optional[np.ndarray]:
        """A CVAE's labels for `count` items, int64 (count,): one for all, or one per item, each a
        label of the model (np.eye would take -1 as the last class). A VAE takes none; None: none given."""
        if not self.config.conditional or labels is None:
            return None
        given = np.atleast_1d(np.asarray(labels))
        if given.dtype.kind in "USO":  # class names, as generate --class takes them: mapped and checked
            given = np.array(explore.label_indices(self.weights, given, "label"), dtype=np.int64)
        elif given.dtype.kind not in "iu":
            raise MnistgenError(f"labels must be whole numbers (label indices), got {given.dtype} values")
        else:
            explore.check_labels(self.weights, given, "label")
        return explore.image_labels(given, count)

    def _images(self, images) -> np.ndarray:
        """uint8 (N, 28, 28) from any numeric array of whole numbers 0-255: (N, 28, 28), (N, 1, 28, 28),
        one (28, 28) image or flat (N, 784) rows."""
        try:
            array = np.asarray(images)
        except (TypeError, ValueError):  # ragged, or paths mixed with pixels
            raise MnistgenError(
                "images must be one array of pixels, (N, 28, 28) or alike, or paths (a path or a list of paths), "
                "not a mixture"
            ) from None
        side = (IMAGE_SIZE, IMAGE_SIZE)
        pixels = IMAGE_SIZE * IMAGE_SIZE
        shaped = (
            array.shape == side
            or (array.ndim == 2 and array.shape[1] == pixels)
            or (array.ndim == 3 and array.shape[1:] == side)
            or (array.ndim == 4 and array.shape[1:] == (1, *side))
        )
        if not shaped or not array.size:
            raise MnistgenError(
                f"images have shape {array.shape}: pass (N, 28, 28), (N, 1, 28, 28), (N, 784) or one (28, 28), N at "
                "least 1"
            )
        return sources.as_pixels(array.reshape(-1, *side), "images")

    # -- latent space
    def interpolate(
        self,
        digits: Optional[Sequence[int]] = None,
        points=None,
        digit: Optional[int] = None,
        steps: int = 16,
        method: str = "lerp",
        loop: bool = False,
        seed: Optional[int] = None,
        images=None,
        labels: Optional[Sequence[int]] = None,
    ) -> np.ndarray:
        """Frames uint8 (F, 28, 28) along a path through digits, latent points (an array (K, d)), or
        the encoder means of `images` (a path or paths, what `read` gave, or an array of images as
        `encode` takes them; see explore.walk); by default through every digit."""
        explore.check_unlabelled_walk(self.weights, digit, labels)
        if seed is not None:
            check_seed(seed)
        digits = None if digits is None else explore.label_indices(self.weights, digits, "--digits")  # names too
        labels = None if labels is None else explore.label_indices(self.weights, labels, "--labels")
        digit = None if digit is None else explore.label_index(self.weights, digit, "--digit")
        if not is_whole(steps) or steps < 1:
            raise MnistgenError(f"steps={steps!r}: frames per segment, a whole number of at least 1")
        if images is not None:
            found = self._walk_images(images, labels)
            anchors = explore.image_anchors(self.weights, self.net, found, digit)
            z, onehot = explore.walk(self.weights, steps, method, loop, **anchors)
        else:
            if digits is None and points is None:
                digits = list(range(self.config.num_classes))
            z, onehot = explore.walk(
                self.weights, steps, method, loop, digits=digits, points=points, label=digit, seed=seed
            )
        return decoders.decode_all(self.decoder, z, onehot)

    def _walk_images(self, images, labels: Optional[list[int]]) -> sources.Images:
        """The `images` of interpolate, encode and reconstruct: what `read` gave; a path or paths, read
        here; or an array of pixels (checked by _images), named images[i]."""
        if isinstance(images, sources.Images):  # labels given label them, as read would have
            given = self._labels(labels, len(images.images))
            return images if given is None else replace(images, labels=given)
        if isinstance(images, (str, Path)) or (
            isinstance(images, (list, tuple)) and images and all(isinstance(p, (str, Path)) for p in images)
        ):
            return self.read(images, labels)
        pixels = self._images(images)
        names = [f"images[{i}]" for i in range(len(pixels))]
        return sources.Images(pixels, self._labels(labels, len(pixels)), names)

    def grid(
        self, n: int, dims: tuple[int, int] = (0, 1), digit: Optional[int] = None, bounds=None, sigma=None
    ) -> tuple[np.ndarray, explore.GridSpec]:
        """The tutorial's latent manifold as one uint8 picture (an n x n grid; a conditional model
        without `digit`: one labelled panel per class) and the ranges it covers."""
        if not is_whole(n) or n < MIN_GRID:
            raise MnistgenError(f"n={n!r}: a grid is n x n images, n a whole number of at least {MIN_GRID}")
        pair = tuple(dims) if hasattr(dims, "__iter__") and not isinstance(dims, (str, bytes)) else ()
        if len(pair) != 2 or not all(is_whole(d) and d >= 0 for d in pair):
            raise MnistgenError(f"dims={dims!r}: give two latent dimensions, e.g. (0, 1)")
        digit = None if digit is None else explore.label_index(self.weights, digit, "--digit")  # a name too
        need = explore.grid_bytes(n, explore.grid_panels(self.config, digit), 1)
        explore.check_memory(need, f"a grid of {n} x {n}", "use a smaller n")
        return explore.manifold(self.weights, self.decoder, n, pair, digit, bounds, sigma)

    def read(
        self,
        paths: Union[str, Path, Sequence[Union[str, Path]]],
        labels: Optional[Sequence[int]] = None,
        limit: Optional[int] = None,
    ) -> sources.Images:
        """Images from files, folders, IDX or HDF5 (see sources.read) with their labels: `labels`
        (one for all, or one per image) where given, else the source's; checked against a conditional
        model (a VAE takes no labels: folders of any name)."""
        by_name = labels is None and self.config.conditional
        classes = self.weights.class_names if by_name else None  # class folders and recorded names, by name
        found = sources.read(_path_list(paths), limit, classes=classes, labels_given=labels is not None)
        if labels is not None:
            if self.config.conditional:  # indices, or the card's class names; a VAE keeps any labels given
                labels = explore.label_indices(self.weights, labels, "--labels")
            found = replace(found, labels=explore.image_labels(labels, len(found.images)))
        classes = self.config.num_classes if self.config.conditional else None
        if classes and found.labels is not None and found.labels.max() >= classes:
            raise MnistgenError(
                f"label {int(found.labels.max())} is out of range: model {self.name} knows labels 0-{classes - 1}"
            )
        return found

    def encode(self, images, labels: Optional[Sequence[int]] = None) -> tuple[np.ndarray, np.ndarray]:
        """Images (N, 28, 28) of whole numbers 0-255, or a path or paths (read as `read` reads them, as
        interpolate takes them) [+ labels for a CVAE: one for all, or one per image; a path's own
        labels otherwise] -> means and standard deviations, float32 (N, d)."""
        found = self._walk_images(images, labels)
        return explore.encode(self.net, found.images, found.labels)

    def reconstruct(self, images, labels: Optional[Sequence[int]] = None) -> np.ndarray:
        """Images (N, 28, 28) of whole numbers 0-255, or paths [+ labels, as encode] -> their
        reconstructions through the encoder means."""
        found = self._walk_images(images, labels)
        return explore.reconstruct(self.net, self.decoder, found.images, found.labels)

    # -- quality
    def evaluate(
        self,
        count: int = 1000,
        seed: int = 0,
        data_dir: Optional[Union[str, Path]] = None,
        judge: str = DEFAULT_JUDGE,
        tstr: bool = False,
        sampling: Optional[Sampling] = None,
        augment: Optional[Union[str, Path]] = None,
        limit: Optional[int] = None,
        seeds: Sequence[int] = scoring.AUGMENT_SEEDS,
        steps: int = scoring.AUGMENT_STEPS,
        test: Optional[Union[str, Path]] = None,
        classifier: Optional[str] = None,
        *,
        on_progress: Optional[scoring.Progress] = None,
    ) -> dict:
        """What `mnistgen evaluate` prints for this model: test-set loss, and `count` samples per
        digit (drawn as `sampling` says, default the card's) graded by `judge`, with the verifier's
        figures beside (the sampling's verifier, else `classifier`, else the model's companion, else
        the shipped classifier when it knows the model's classes: `verifiers.evaluation_verifier`);
        with `augment` (a labelled set, its first `limit` images), whether the samples help a
        classifier trained on it (scoring.augment). `on_progress(stage, done, total)` hears of each
        slow stage (scoring.Progress)."""
        check_request(count, seed)  # before the judge and the test set load
        _check_augment(limit, seeds, steps)
        sampling = sampling or self.sampling()
        if sampling.verified:
            verifier, note = sampling.classifier, None
        else:
            verifier, note = verifiers.evaluation_verifier(self.weights, classifier)
        return scoring.evaluate(
            _test_data(data_dir, test),
            checkpoint.inspect_role(judge, "--judge"),
            self.weights,
            sampling,
            count=count,
            seed=seed,
            with_tstr=tstr,
            device_name=self.device,
            augment_real=_real(augment, limit),
            seeds=seeds,
            steps=steps,
            verifier=verifier,
            verifier_note=note,
            on_progress=on_progress,
        )


def _test_data(data_dir, test):
    """The data evaluate compares with: --data (its test split), with --test's images as the test
    split; --test alone needs no --data (nor MNIST: the cached MNIST's training images serve --tstr
    when it is there)."""
    if test is not None and data_dir is None and not sources.mnist_cached():  # nothing to train --tstr on: fine
        held = sources.load(Path(test), need_labels=True)  # unless it is asked for
        return replace(held, train=data.Split.empty(), test=held.train)
    dataset = sources.load(None if data_dir is None else Path(data_dir), need_labels=True)
    held = _held_test(test, dataset.classes, dataset.source)
    return dataset if held is None else replace(dataset, test=held.train, classes=dataset.classes or held.classes)


def _real(augment, limit: Optional[int]) -> Optional[data.Dataset]:
    """The user's labelled set for --augment (its first `limit` images): any form --data takes; one
    read already (mnistgen.evaluate reads it before the model loads) is passed on as it is."""
    if augment is None or isinstance(augment, data.Dataset):
        return augment
    found = sources.load(Path(augment), need_labels=True, limit=limit)
    return replace(found, train=data.first_images(found.train, limit)) if limit is not None else found


def load(model: str = DEFAULT_GENERATOR, device: Union[Device, str] = Device.auto) -> Model:
    """Load a model by name (shipped, or in $MNISTGEN_WEIGHTS), .safetensors path or run directory."""
    return Model(checkpoint.inspect_role(str(model), "--model"), device)


@keeps_device  # --images: the judge runs on the device chosen here, then the caller's is back
def evaluate(
    model: Optional[str] = DEFAULT_GENERATOR,
    images: Optional[Union[str, Path, Sequence[Union[str, Path]]]] = None,
    count: int = 1000,
    seed: int = 0,
    data_dir: Optional[Union[str, Path]] = None,
    classifier: Optional[str] = None,
    judge: str = DEFAULT_JUDGE,
    tstr: bool = False,
    device: Union[Device, str] = Device.auto,
    augment: Optional[Union[str, Path]] = None,
    limit: Optional[int] = None,
    seeds: Sequence[int] = scoring.AUGMENT_SEEDS,
    steps: int = scoring.AUGMENT_STEPS,
    test: Optional[Union[str, Path]] = None,
    *,
    on_progress: Optional[scoring.Progress] = None,
    **sampling_options,
) -> dict:
    """`mnistgen evaluate` as a call: score a model's samples (sampling options as in generate) or,
    with `images` (a path, or a list of them), images from any tool, verified by `classifier`, else
    by the companion of the model generate recorded for them (scoring.images_verifier). With
    `augment` (a labelled set in any form train --data takes, its first `limit` images): train the
    classifier on it alone and with the generated images, `steps` steps per seed, and score both on
    the test set (`test`, else `data_dir`'s test split). `on_progress(stage, done, total)` hears of
    each slow stage in order (sampling, grading, each training, the near-copy search), `done` of
    `total` images or steps."""
    _check_augment(limit, seeds, steps)
    _check_known(sampling_options, EVALUATE_KEYWORDS, "evaluate")
    if limit is not None and augment is None:
        raise MnistgenError("limit chooses images of the augment set: drop it, or pass augment")
    more = {"augment_real": _real(augment, limit), "seeds": seeds, "steps": steps, "on_progress": on_progress}
    if images:
        if shaped := SamplingRequest(**sampling_options).shaping():  # None and "auto" leave it to a card: none here
            raise MnistgenError(f"{', '.join(shaped)} shape a model's samples; images are scored as they are")
        judge_weights = checkpoint.inspect_role(judge, "--judge")
        paths = _path_list(images)
        verifier, note = scoring.images_verifier(judge_weights, classifier, paths)
        return scoring.evaluate(
            _test_data(data_dir, test),
            judge_weights,
            images=paths,
            verifier=verifier,
            verifier_note=note,
            seed=seed,
            with_tstr=tstr,
            device_name=select_device(device),
            **more,
        )
    loaded = load(model or DEFAULT_GENERATOR, device)
    spec = loaded.sampling(classifier=classifier, **sampling_options)  # None: the model's own verifier
    return loaded.evaluate(
        count,
        seed,
        data_dir,
        judge,
        tstr,
        spec,
        more["augment_real"],  # read once, above: a folder's pictures are not decoded twice
        limit,
        seeds,
        steps,
        test,
        classifier,
        on_progress=on_progress,
    )


SAMPLING_KEYWORDS = tuple(f.name for f in fields(SamplingRequest))  # generate's, SyntheticMNIST's and evaluate's
EVALUATE_KEYWORDS = SAMPLING_KEYWORDS + tuple(
    p for p in inspect.signature(evaluate).parameters if p != "sampling_options"
)
CLASSIFIER_FIELDS = ("arch", "channels")  # fit's options that shape the classifier; the rest are ClassifierOptions
FIT_SETS = ("class_names", "extra", "recipe", "max_epochs", "patience")  # TrainOptions fields the recipe or fit sets


@keeps_device
def fit(
    data_dir: Optional[Union[str, Path]],
    out: Union[str, Path],
    model: Optional[str] = None,
    recipe: Optional[str] = None,
    *,
    limit: Optional[int] = None,
    indices: Optional[Sequence[int]] = None,
    test: Optional[Union[str, Path]] = None,
    class_names: Sequence[str] = (),
    download: bool = False,
    resume: bool = False,
    device: Union[Device, str] = Device.auto,
    callback=None,
    on_note: Optional[Callable[[str], None]] = None,
    rank: int = 0,
    world: int = 1,
    **options,
) -> dict:
    """`mnistgen train` as a call, in this process: train a `model` ("vae", "cvae" or "classifier";
    None: what the named `recipe` trains, else "cvae") on `data_dir` (any form `--data` takes; None:
    the cache) into the run directory `out`, and return the last epoch's metrics. A vae/cvae takes a
    recipe (named, else the one for the data's size) and train's options as keywords (epochs,
    batch_size, lr, seed, latent, channels, likelihood, beta1, lr_decay, kl_warmup, eval_every,
    shift, companion, command); `callback`
    gets train.TrainCallback's calls, the classifier's `callback(metrics)` one per epoch, and
    `on_note` each note about converted pictures. `rank`/`world`: this process's place in a
    data-parallel launch. With `resume`, the run continues with its own options: a keyword given
    (not None; `recipe`, `class_names` when given) at a value other than the run's is refused, but
    `epochs` (its new target) and `command`."""
    kinds = [kind.value for kind in TrainKind]
    if model is not None and model not in kinds:
        raise MnistgenError(f"cannot train {model!r}: train one of {', '.join(kinds)}")
    model = train_kind(model, recipe)
    _check_fit_keywords(model, options)
    _check_ranges({**options, "limit": limit})
    device_name = select_device(device)  # the classifier's too; the caller's device is given back after
    out = Path(out)
    need_labels = model != TrainKind.vae.value
    if rank == 0:
        train_lib.check_run_dir(out, resume)
    where = None if data_dir is None else Path(data_dir)
    loaded = sources.load(where, download=download, need_labels=need_labels, limit=limit if indices is None else None)
    for note in loaded.notes if on_note else []:
        on_note(note)
    dataset, extra = train_lib.select(loaded, limit, None if indices is None else list(indices))
    options = {k: v for k, v in options.items() if v is not None}
    names = list(class_names) or loaded.classes  # an ImageFolder's class names, unless class_names renames them
    held = _held_test(test, names, loaded.source)
    held_out = None if held is None else held.train
    if model == TrainKind.classifier.value:
        shape = {k: options.pop(k) for k in CLASSIFIER_FIELDS if k in options}
        cfg = ClassifierConfig(num_classes=train_lib.class_count(dataset, names), **shape)  # as many as a cvae's
        settings = clf.ClassifierOptions(**options)
        chosen = indices is not None
        dataset, _, holdout = train_lib.hold_out(dataset, settings.seed, held_out, chosen, validation=False)
        return clf.fit(dataset, out, settings, cfg, on_epoch=callback, classes=names, holdout=holdout)
    config, train_options = train_lib.plan(model, dataset, recipe, names, extra=extra, **options)
    if world > 1:  # launched: the batch size is each process's, recorded with the global one
        train_options.extra.update(processes=world, global_batch_size=train_options.batch_size * world)
    getattr(callback, "on_plan", lambda *plan: None)(config, train_options, len(dataset.train))
    given = {*options, *(["recipe"] if recipe else []), *(["class_names"] if class_names else [])}
    return train_lib.train(
        config, dataset, train_options, out, resume, callback, rank, world, held_out, device_name, given
    )


def _check_fit_keywords(model: str, options: dict) -> None:
    """fit's keywords are the options of the model it trains: a classifier's, or a generator's."""
    if model == TrainKind.classifier.value:
        known = {f.name for f in fields(clf.ClassifierOptions)} - {"max_steps"} | set(CLASSIFIER_FIELDS)
    else:
        known = {f.name for f in fields(TrainOptions)} - set(FIT_SETS) | set(train_lib.MODEL_FIELDS)
    _check_known(options, known, f"fit(model={model!r})")


def _check_ranges(options: dict, ranges: dict = TRAIN_RANGES) -> None:
    """Keywords in the ranges of their options (config.TRAIN_RANGES, EVALUATE_RANGES; Typer checks the
    CLI's): epochs=0 trained the recipe's cap, lr=-1 diverged, batch_size=0 divided by zero, and
    evaluate's steps=0 reported two untrained classifiers as "no gain"."""
    for key, value in options.items():
        if key not in ranges or value is None:
            continue
        option, low, high = ranges[key]
        whole = isinstance(low, int) and isinstance(high, int)
        if not (is_whole if whole else is_number)(value) or not low <= value <= high:
            span = f"a whole number from {low:,} to {high:,}" if whole else f"a number from {low:g} to {high:g}"
            raise MnistgenError(f"{key}={value!r}: {option} takes {span}")


def _check_known(given: dict, known, what: str) -> None:
    """A misspelt keyword (epochz=3) is named with the ones there are, not left to a dataclass's TypeError."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise MnistgenError(f"{what} takes no keyword {', '.join(unknown)}: use one of {', '.join(sorted(set(known)))}")


def _check_augment(limit, seeds, steps) -> None:
    """evaluate's --augment keywords, as the CLI takes them: seeds a non-empty list of seeds."""
    _check_ranges({"steps": steps, "limit": limit}, EVALUATE_RANGES)
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__len__") or not len(seeds):
        raise MnistgenError(f"seeds={seeds!r}: give a list of classifier seeds, e.g. seeds=(0, 1)")
    for seed in seeds:
        check_seed(seed)


def _path_list(paths) -> list[Path]:
    """One path or several, as Paths: a str is one path, not its characters."""
    return [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]


def _held_test(test, names: list[str], source: str) -> Optional[data.Dataset]:
    """--test (train's and evaluate's): its images, whose classes must be the training data's."""
    if test is None:
        return None
    held = sources.load(Path(test), need_labels=True)
    data.check_same_classes(held.train.labels, held.classes, "the --test images", names, f"the training data {source}")
    return held


def models() -> list[dict]:
    """Every model mnistgen can find by name: name, kind, latent, epochs, test loss, sha256, path."""
    found = []
    for name in checkpoint.available_names():
        try:
            w = checkpoint.inspect(name)
        except MnistgenError as exc:
            found.append({"name": name, "error": str(exc)})
            continue
        metrics, training = w.card.get("metrics", {}), w.card.get("training", {})
        found.append(
            {
                "name": name,
                "kind": w.config.kind,
                "latent": getattr(w.config, "latent", None),
                "epochs": training.get("epochs_done"),
                "test_loss": metrics.get("test_loss"),
                "sha256": w.sha256,
                "path": str(w.path),
            }
        )
    return found
