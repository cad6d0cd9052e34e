"""The training loop: data in, checkpoints, metrics and sample grids out.

It knows nothing of the terminal: progress goes to a `TrainCallback`, which the CLI turns
into a rich progress bar. A run directory holds
  train_state.safetensors / .json   model + Adam state + epoch, for --resume
  model.safetensors / model.json    the weights and model card, usable as --model RUN_DIR
  metrics.jsonl                     one line per epoch
  samples/epoch-NNN.png             samples after each epoch: a row per class (up to 10), 20 columns
  classifier.safetensors / .json    the companion classifier, trained on the same images (a CVAE)
A seeded, label-stratified share of the user's images is always held out (data.holdout): the
validation part decides early stopping and calibrates sampling, the test part (when the source has
no test split of its own and none is given) measures the model; neither is ever trained on.
Every file is written atomically, so a killed run resumes from its last finished epoch.
Randomness is derived from (seed, epoch), so a resumed run repeats the uninterrupted one.
"""

from __future__ import annotations

import functools
import json
import shlex
import time
from collections.abc import Collection
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Optional

import numpy as np
from safetensors.numpy import load_file

from mnistgen import atomic, calibrate, checkpoint, data, decoders, explore, export, priors, untrusted
from mnistgen import model as model_lib
from mnistgen.checkpoint import STATE_STEM, check_run_dir  # noqa: F401 (train.check_run_dir for callers)
from mnistgen.config import (
    MNIST_CLASSES,
    RESUME_FIX,
    ModelConfig,
    TrainOptions,
    named_recipe,
    option_name,
    recipe_for,
)
from mnistgen.data import Dataset, Split, one_hot, shift_images, to_unit_range
from mnistgen.errors import MnistgenError
from mnistgen.model import test_loss
from mnistgen.runtime import failure_reason, import_paddle
from mnistgen.schedule import cosine_lr
from mnistgen.version import __version__

METRICS_FILE = checkpoint.RUN_METRICS_FILE
SAMPLES_DIR = "samples"
STATS_IMAGES = 10_000  # training images encoded for the card's latent statistics
GRID_ROWS, GRID_COLS = 10, 20  # the tutorial's 10x20 sample figure
# independent random streams per purpose (2 is model.STREAM_EVAL: the test loss's noise)
STREAM_SHUFFLE, STREAM_GRID, STREAM_SHIFT = 1, 3, 4
COMPANION_STEM = "classifier"  # the companion classifier's files in the run directory


# train_state.safetensors: the model's tensors under model/, Adam's under optim/: per parameter,
# two moments of its shape and the running powers of beta1 and beta2 (one number each), which
# Paddle names PARAM_SLOT_0.
MODEL_PREFIX, OPTIM_PREFIX = "model/", "optim/"
ADAM_MOMENTS = ("moment1", "moment2")
ADAM_POWERS = ("beta1_pow_acc", "beta2_pow_acc")
ADAM_POWER_SHAPE = (1,)
ACCUMULATOR_SUFFIX = "_0"

RESUME_OVERRIDES = ("epochs", "command")  # the saved options a resumed run replaces: the epoch target, the command
POSITIVE_OPTIONS = ("batch_size", "eval_every", "max_epochs")  # saved options that divide or bound: at least 1
OPTION_FLAGS = {"companion": "classifier"}  # train's flag for an option not named after it (--no-classifier)


def _setting(options: TrainOptions, key: str):
    """An option as the user gives it: the global --batch-size of a data-parallel run (its card's
    global_batch_size; each process trains on a share of it), any other option's value."""
    value = getattr(options, key)
    return options.extra.get("global_batch_size", value) if key == "batch_size" else value


def _typed(key: str, value) -> tuple[str, str]:
    """An option as train's command line names it and as it is typed: ("lr 0.001", "--lr 0.001"),
    ("lr-decay off", "--no-lr-decay"), ("class-names a,b", "--class-names a,b")."""
    flag = option_name(OPTION_FLAGS.get(key, key)).removeprefix("--")
    if isinstance(value, bool):
        return f"{flag} {'on' if value else 'off'}", f"--{'' if value else 'no-'}{flag}"
    shown = ",".join(value) if isinstance(value, list) else str(value)
    return f"{flag} {shown}", f"--{flag} {shlex.quote(shown)}"


def _valid_option(key: str, value, default) -> bool:
    """A saved TrainOptions field of its field's JSON type (the default's); numbers finite and >= 0.
    An optional field (default None) takes None, or a value checked as its own kind is."""
    if default is None:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return value is None or _valid_option(key, value, 0.0 if number else value)
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, (int, float)):
        kind = int if isinstance(default, int) else (int, float)
        finite = isinstance(value, int) or (isinstance(value, float) and bool(np.isfinite(value)))
        return isinstance(value, kind) and finite and value >= (1 if key in POSITIVE_OPTIONS else 0)
    if isinstance(default, list):
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, type(default))


def _unprefixed(table: dict, prefix: str) -> dict:
    """The entries of `table` whose names start with `prefix`, named without it."""
    return {k[len(prefix) :]: v for k, v in table.items() if k.startswith(prefix)}


def _history_entry(entry) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("seconds"), (int, float))


def state_problem(card) -> Optional[str]:
    """What is wrong with a train_state.json (None: nothing): each field --resume reads must have
    its type, the history one entry per epoch, the best epoch one of them."""
    if not isinstance(card, dict):
        return "not a JSON object"
    epoch, history, best, saved = card.get("epoch"), card.get("history", []), card.get("best"), card.get("options", {})
    if not isinstance(card.get("config"), dict):
        return 'no "config" object'
    if not checkpoint.is_count(epoch):
        return f'"epoch" is {epoch!r}, not a count of epochs'
    if not isinstance(history, list) or len(history) != epoch or not all(_history_entry(h) for h in history):
        return f'"history" does not hold the metrics of its {epoch} epochs'
    if best and not (isinstance(best, dict) and checkpoint.is_count(best.get("epoch")) and 1 <= best["epoch"] <= epoch):
        return '"best" does not name one of its epochs'
    if not isinstance(saved, dict):
        return '"options" is not an object'
    defaults = asdict(TrainOptions())
    for key, value in saved.items():
        if key in defaults and key not in RESUME_OVERRIDES and not _valid_option(key, value, defaults[key]):
            return f"option {key} is {value!r}"
    return None


class TrainCallback:
    """Receives progress; the default does nothing. (api.fit also calls `on_plan(config, options,
    images)`, when a callback has it, once the recipe is resolved.)"""

    def on_start(self, epochs: int, first_epoch: int, steps_per_epoch: int) -> None: ...

    def on_step(self, epoch: int, step: int, loss: float, rec: float, kl: float, images_per_s: float) -> None: ...

    def on_epoch(self, metrics: dict) -> None: ...

    def on_stage(self, text: str) -> None:
        """A step after the epochs, e.g. "stopped at epoch 284, best 264: training the companion classifier"."""


def stats_images(train: Split) -> Split:
    """The training images a card's latent statistics and fitted priors are computed on (the first
    STATS_IMAGES, of every class in turn when the data lists them class by class: data.first_images,
    so every class gets its prior): `train` and a refit of an older card (examples/refit_prior.py)
    take the same."""
    return data.first_images(train, STATS_IMAGES)


def learning_rate(options: TrainOptions, epoch: int) -> float:
    return cosine_lr(options.lr, epoch, options.horizon) if options.lr_decay else options.lr


def _seed_int(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


class Trainer:
    def __init__(
        self,
        config: ModelConfig,
        dataset: Dataset,
        options: TrainOptions,
        run_dir: Path,
        callback=None,
        rank: int = 0,
        world: int = 1,
        val: Optional[Split] = None,
        holdout: Optional[dict] = None,
        all_train: Optional[Split] = None,
    ):
        self.paddle = import_paddle()
        self.val, self.holdout = val, holdout or {}
        self.best: dict = {}  # early stopping: the best held-out loss so far and its epoch
        self.best_arrays: Optional[dict] = None
        self.rank, self.world = rank, world
        # Every rank's training images (data-parallel ranks train on shards of it): the card counts
        # them, and its latent statistics and fitted priors come from them, not from rank 0's shard.
        self.all_train = dataset.train if all_train is None else all_train

        self.m = model_lib
        self.config, self.dataset, self.options, self.run_dir = config.validate(), dataset, options, Path(run_dir)
        self.callback = callback or TrainCallback()
        self.paddle.seed(_seed_int(options.seed))
        self.model = model_lib.VAE(config)
        # Data-parallel: every rank trains on its shard; DataParallel averages the gradients.
        self.net = self.paddle.DataParallel(self.model) if world > 1 else self.model
        self.optimizer = self._adam()
        self.images = self.paddle.to_tensor(to_unit_range(dataset.train.images))  # (N, 1, 28, 28) on the device
        self.shifted_epoch = None
        self.onehot = self.paddle.to_tensor(one_hot(dataset.train.labels, config.num_classes))  # (N, 10)
        self.history: list[dict] = []
        self.start_epoch = 0
        self._fast, self._inference_failed = None, None  # the predictor path for the current weights

    def _adam(self):
        """Adam with the run's options (Kingma & Ba, ICLR 2015); its learning rate is set every epoch."""
        return self.paddle.optimizer.Adam(
            learning_rate=self.options.lr, beta1=self.options.beta1, parameters=self.model.parameters()
        )

    # -- state ---------------------------------------------------------------------------------
    def _state_card(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "epoch": self.start_epoch,
            "options": asdict(self.options),
            "history": self.history,
            "best": self.best,
            "data": self.data_card,
        }

    @functools.cached_property
    def data_card(self) -> dict:
        """What the run trains on, so that --resume can tell the same data from other data (hashed
        once per run: the images do not change between the epochs that save it)."""
        return {"train_images": len(self.all_train), "sha256": self.all_train.fingerprint()}

    def save_state(self) -> None:
        arrays = {f"{MODEL_PREFIX}{k}": v for k, v in self.m.state_arrays(self.model).items()}
        opt = {k: v.numpy() for k, v in self.optimizer.state_dict().items() if hasattr(v, "numpy")}
        arrays.update({f"{OPTIM_PREFIX}{k}": np.ascontiguousarray(v) for k, v in opt.items()})
        from safetensors.numpy import save as save_bytes

        atomic.write_bytes(self.run_dir / (STATE_STEM + checkpoint.WEIGHTS_SUFFIX), save_bytes(arrays))
        atomic.write_text(
            self.run_dir / (STATE_STEM + checkpoint.CARD_SUFFIX), json.dumps(self._state_card(), indent=1)
        )

    def _check_same_data(self, saved) -> None:
        """--resume on other images (another --data, --limit or --seed, hence another held-out
        split) would train one model on two data sets; a state from before the data was recorded
        (no "data") is trusted."""
        if not isinstance(saved, dict) or saved == self.data_card:
            return
        raise MnistgenError(
            f"--resume: {self.run_dir} was training on other images ({saved.get('train_images')} to train on, now "
            f"{len(self.all_train)}, or the same number but not the same ones): pass the same --data, --limit, "
            "--indices, --test and --seed, or another --out"
        )

    def _state_shapes(self) -> dict[str, tuple]:
        """Every tensor train_state.safetensors holds for this model, and its shape: the model's
        parameters, and Adam's accumulators of each (named as Paddle names them in the run's fresh
        name scope)."""
        shapes = {f"{MODEL_PREFIX}{name}": tuple(p.shape) for name, p in self.model.state_dict().items()}
        for param in self.model.parameters():
            for slot in ADAM_MOMENTS + ADAM_POWERS:
                shape = tuple(param.shape) if slot in ADAM_MOMENTS else ADAM_POWER_SHAPE
                shapes[f"{OPTIM_PREFIX}{param.name}_{slot}{ACCUMULATOR_SUFFIX}"] = shape
        return shapes

    def _check_arrays(self, path: Path, arrays: dict, expected: dict[str, tuple]) -> None:
        """Refuse saved tensors that are not exactly the `expected` names, float32, of their shapes:
        Paddle would stop on them with an assertion, or a KeyError, deep in set_value."""
        found = {name: tuple(a.shape) for name, a in arrays.items() if a.dtype == np.float32}
        wrong = sorted(set(expected) ^ set(found)) or sorted(n for n in expected if found[n] != expected[n])
        if wrong:
            raise MnistgenError(
                f"cannot resume from {self.run_dir}: {path.name} is damaged (tensor {wrong[0]} is missing, "
                f"unexpected, or of another shape or type); {RESUME_FIX}"
            )

    def _check_given(self, resumed: TrainOptions, given: Collection[str]) -> None:
        """A resumed run trains with its own settings (`resumed`); an option the caller gave
        (`given`, by name: the keywords fit received, the options typed on train's command line) at
        another value is refused, since it would seem to have had an effect (--lr 0.01 on a run at
        0.001). The same value, and an option not given, resume; so does the run's recorded line."""
        for key in [f.name for f in fields(TrainOptions) if f.name in given and f.name not in RESUME_OVERRIDES]:
            own, asked = _setting(resumed, key), _setting(self.options, key)
            if own != asked:
                raise MnistgenError(
                    f"--resume: {self.run_dir} trains with {_typed(key, own)[0]} (its own setting); drop "
                    f"{_typed(key, asked)[1]}, or start a new run in another --out"
                )

    def load_state(self, given: Collection[str] = ()) -> None:
        """Continue from the run's train_state: its weights, Adam's state, its options (but the epoch
        target and command), refusing a state of another model or data, and `given` options
        (`_check_given`) that differ from the run's."""
        card_path = self.run_dir / (STATE_STEM + checkpoint.CARD_SUFFIX)
        state_path = self.run_dir / (STATE_STEM + checkpoint.WEIGHTS_SUFFIX)
        untrusted.check_not_special(card_path, "--resume:", RESUME_FIX)  # a FIFO would block the read
        try:
            card = untrusted.loads(card_path.read_text())
            arrays = load_file(str(state_path))
        except Exception as exc:  # OSError, ValueError (damaged JSON), and safetensors' own error types
            raise MnistgenError(
                f"cannot resume from {self.run_dir} ({exc}): start a new run without --resume"
            ) from None
        problem = state_problem(card)
        if problem:
            raise MnistgenError(
                f"cannot resume from {self.run_dir}: {card_path.name} is damaged ({problem}); start without --resume "
                "in a new --out"
            )
        if ModelConfig.from_dict(card.get("config")) != self.config:
            raise MnistgenError(
                f"--resume: {self.run_dir} was trained with {card.get('config')}; pass the same --model/--latent or "
                "another --out"
            )
        self._check_same_data(card.get("data"))
        saved = {k: v for k, v in card.get("options", {}).items() if k in TrainOptions.__dataclass_fields__}
        # Resume repeats the saved run; only the epoch target and the recorded command may change.
        resumed = TrainOptions(**{**saved, **{k: getattr(self.options, k) for k in RESUME_OVERRIDES}})
        self._check_given(resumed, given)
        shapes = self._state_shapes()
        self._check_arrays(state_path, arrays, shapes)
        self.m.load_arrays(self.model, _unprefixed(arrays, MODEL_PREFIX))
        self.options = resumed
        self.optimizer = self._adam()  # with the saved beta1: the one built before knew only the given options
        opt_state = {k: self.paddle.to_tensor(v) for k, v in _unprefixed(arrays, OPTIM_PREFIX).items()}
        self.optimizer.set_state_dict(opt_state)
        self.start_epoch = int(card["epoch"])
        self.history = list(card.get("history", []))
        self.best = dict(card.get("best") or {})
        best_model = self.run_dir / (checkpoint.RUN_MODEL_STEM + checkpoint.WEIGHTS_SUFFIX)
        if self.best and best_model.is_file():
            self.best_arrays = load_file(str(best_model))
            self._check_arrays(best_model, self.best_arrays, _unprefixed(shapes, MODEL_PREFIX))

    # -- one epoch -----------------------------------------------------------------------------
    def _batch(self, index):
        x = self.paddle.gather(self.images, index)  # (B, 1, 28, 28)
        y = self.paddle.gather(self.onehot, index) if self.config.conditional else None  # (B, 10)
        return x, y

    def _shift_for(self, epoch: int) -> None:
        """Each epoch sees every training image moved by its own random offset (options.shift)."""
        if not self.options.shift or self.shifted_epoch == epoch:
            return
        rng = np.random.default_rng([self.options.seed, STREAM_SHIFT, epoch])
        moved = shift_images(self.dataset.train.images, self.options.shift, rng)
        self.images = self.paddle.to_tensor(to_unit_range(moved))
        self.shifted_epoch = epoch

    def train_epoch(self, epoch: int) -> dict:
        paddle, opts = self.paddle, self.options
        self._shift_for(epoch)
        n = len(self.dataset.train)
        batch = min(opts.batch_size, n)
        steps = max(1, n // batch)  # drop the ragged tail, as the tutorial does
        self.optimizer.set_lr(learning_rate(opts, epoch))
        stream = [opts.seed, STREAM_SHUFFLE, epoch] + ([self.rank] if self.world > 1 else [])
        paddle.seed(_seed_int(*stream))
        perm = paddle.to_tensor(np.random.default_rng(stream).permutation(n))
        sums = np.zeros(3)
        started = time.perf_counter()
        self.model.train()
        for step in range(steps):
            x, y = self._batch(perm[step * batch : (step + 1) * batch])
            noise = paddle.randn([batch, self.config.latent])  # (B, d)
            head, mean, logvar = self.net(x, y, noise)
            weight = min(1.0, (epoch + step / steps) / opts.kl_warmup) if opts.kl_warmup else 1.0
            loss, rec, kl = self.m.vae_loss(x, head, mean, logvar, self.config.likelihood, weight)
            loss.backward()
            self.optimizer.step()
            self.optimizer.clear_grad()
            values = np.array([rec.item() + kl.item(), rec.item(), kl.item()])  # the true negative ELBO
            if not np.all(np.isfinite(values)):
                raise MnistgenError(
                    f"training diverged at epoch {epoch + 1}, step {step + 1} (loss is {values[0]}): lower --lr; the "
                    f"last good checkpoint is kept in {self.run_dir}"
                )
            sums += values
            elapsed = time.perf_counter() - started
            self.callback.on_step(epoch, step, *(sums / (step + 1)), (step + 1) * batch / max(elapsed, 1e-9))
        seconds = time.perf_counter() - started
        loss, rec, kl = sums / steps
        return {
            "epoch": epoch + 1,
            "lr": learning_rate(opts, epoch),
            "train_loss": loss,
            "train_rec": rec,
            "train_kl": kl,
            "seconds": round(seconds, 2),
            "images_per_s": round(steps * batch / seconds, 1),
        }

    def _inference(self, images: int):
        """The predictor path for a pass over `images` images with the current weights (shared by the
        epoch's test loss, latent statistics and sample grid), or None for eager Paddle: on a GPU, for
        small passes (decoders.FAST_MIN_IMAGES), or once the predictor has failed in this run."""
        if self._inference_failed or images < decoders.FAST_MIN_IMAGES:
            return None
        sha256 = decoders.weights_sha256(self.model)
        if self._fast is None or self._fast.sha256 != sha256:
            self._fast = decoders.training_inference(self.model, images, self.paddle.get_device())
        return self._fast

    def _fast_or_eager(self, images: int, fast, eager):
        """fast(inference) where the predictor path applies and works, else eager()."""
        inference = self._inference(images)
        if inference is not None:
            try:
                return fast(inference)
            except Exception as exc:  # a Paddle without oneDNN, an export it cannot make: eager from now on
                self._inference_failed = failure_reason(exc)
        return eager()

    def evaluate(self) -> dict:
        """Test-set loss with fixed noise (deterministic); empty when the data has no test split."""
        test = self.dataset.test
        if test is None or len(test) == 0:
            return {}
        seed = self.options.seed
        return self._fast_or_eager(
            len(test),
            lambda inference: test_loss(self.model, test, seed, inference),
            lambda: test_loss(self.model, test, seed),
        )

    def validate(self) -> dict:
        """Held-out validation loss, as `evaluate` but on the validation images: val_loss, val_rec, val_kl."""
        found = test_loss(self.model, self.val, self.options.seed)
        return {k.replace("test_", "val_"): v for k, v in found.items()}

    def latent_stats(self, mixture: bool = True) -> dict:
        """Encoder posteriors on training images: range, spread, per-class centroids and the fitted
        priors (priors.py; the mixture only with `mixture`), for the card.

        Latent-exploring commands (grids, interpolation between digit centroids) read these, so
        they work where no dataset is present.
        """
        part = stats_images(self.all_train)
        labels = part.labels if self.config.conditional else None  # the encoder's condition
        means, stds = self._fast_or_eager(
            len(part),
            lambda inference: inference.encode(part.images, labels),
            lambda: explore.encode(self.model, part.images, part.labels),
        )
        grouped = part.labels if self.dataset.labelled else None  # unlabelled pictures: no per-label centroids
        return priors.latent_stats(means, stds, grouped, self.options.seed, mixture)

    def sample_grid(self, epoch: int) -> Path:
        rng = np.random.default_rng([self.options.seed, STREAM_GRID])
        z = rng.standard_normal((GRID_ROWS * GRID_COLS, self.config.latent), dtype=np.float32)
        rows = min(GRID_ROWS, self.config.num_classes) if self.config.conditional else GRID_ROWS  # a row per class
        labels = np.repeat(np.arange(rows), GRID_COLS)
        z = z[: rows * GRID_COLS]
        onehot = one_hot(labels, self.config.num_classes) if self.config.conditional else None
        images = self._fast_or_eager(
            len(z), lambda inference: inference.decode(z, onehot), lambda: decoders.decode(self.model, z, onehot)
        )
        path = self.run_dir / SAMPLES_DIR / f"epoch-{epoch:03d}.png"
        path.parent.mkdir(exist_ok=True)
        export.write_png(path, export.tile(images.reshape(rows, GRID_COLS, *images.shape[1:])))
        return path

    # -- the run -------------------------------------------------------------------------------
    def class_names(self) -> list[str]:
        """The card's classes: none for unlabelled pictures (a flat folder), else the given names or
        the label numbers."""
        if not self.dataset.labelled:
            return []
        return self.options.class_names or [str(c) for c in range(self.config.num_classes)]

    def model_card(self, metrics: dict, mixture: bool = True) -> dict:
        paddle_version = self.paddle.__version__
        return {
            "name": self.run_dir.name,
            "config": self.config.to_dict(),
            "classes": self.class_names(),
            "training": {
                **{k: v for k, v in asdict(self.options).items() if k != "extra"},
                **self.options.extra,
                "epochs_done": metrics["epoch"],
                "train_images": len(self.all_train),
                "data": self.dataset.source,
                "holdout": self.holdout,
                **({"best_epoch": self.best.get("epoch")} if self.options.epochs is None else {}),
                "seconds_total": round(sum(h["seconds"] for h in self.history), 1),
            },
            "metrics": {k: v for k, v in metrics.items() if k.startswith(("test_", "train_", "val_"))},
            "latent_stats": self.latent_stats(mixture),
            "mnistgen_version": __version__,
            "paddle_version": paddle_version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def closed_card(self) -> Optional[dict]:
        """A resumed run with nothing left to do (its epochs done, or early stopping decided, and its
        closing card written): that card, so --resume repeats nothing. Else None."""
        done = self.start_epoch >= self.options.horizon or (self.start_epoch and self._stop_early(self.start_epoch - 1))
        path = self.run_dir / (checkpoint.RUN_MODEL_STEM + checkpoint.WEIGHTS_SUFFIX)
        if not done or not path.is_file():
            return None
        card = checkpoint.inspect(str(path)).card
        return card if "mixture" in (card.get("latent_stats") or {}) and "metrics" in card else None

    def closed_metrics(self, card: dict) -> dict:
        """What the run returned when it ended (the best epoch's metrics, or the last's), from its history and card."""
        best = (card.get("training") or {}).get("best_epoch")
        ended = dict(self.history[best - 1] if best else self.history[-1]) if self.history else {}
        ended.update(card["metrics"], **({"stopped_at_epoch": self.start_epoch} if best else {}))
        return {**ended, "already_finished": True}

    def _stop_early(self, epoch: int) -> bool:
        """No better held-out loss for `patience` epochs after the KL warm-up: stop (epochs=None only)."""
        opts = self.options
        if opts.epochs is not None or not self.best:
            return False
        return epoch + 1 > opts.kl_warmup and epoch + 1 - self.best["epoch"] >= opts.patience

    def _track_best(self, epoch: int, metrics: dict) -> None:
        loss = metrics.get("val_loss")
        if loss is None:  # nothing held out: the last epoch is the best
            self.best = {"epoch": epoch + 1}
            self.best_arrays = None
        elif not self.best or loss < self.best.get("val_loss", np.inf):
            self.best = {"epoch": epoch + 1, "val_loss": round(float(loss), 4)}
            self.best_arrays = {k: np.array(v) for k, v in self.m.state_arrays(self.model).items()}

    def run(self) -> dict:
        opts = self.options
        self.callback.on_start(
            opts.horizon,
            self.start_epoch,
            max(1, len(self.dataset.train) // min(opts.batch_size, len(self.dataset.train))),
        )
        metrics = self.history[-1] if self.history else {}
        for epoch in range(self.start_epoch, opts.horizon):
            metrics = self.train_epoch(epoch)
            self.start_epoch = epoch + 1
            metrics.update(self.validate())  # every rank: they must agree on when to stop
            self._track_best(epoch, metrics)
            stop = self._stop_early(epoch)
            if self.rank != 0:  # only rank 0 evaluates and writes
                if stop:
                    break
                continue
            if (epoch + 1) % opts.eval_every == 0 or epoch + 1 == opts.horizon or stop:
                metrics.update(self.evaluate())
            metrics = {
                k: (round(float(v), 4) if isinstance(v, (float, np.floating)) else v) for k, v in metrics.items()
            }
            metrics["samples"] = str(self.sample_grid(epoch + 1).relative_to(self.run_dir))
            self.history.append(metrics)
            self.save_state()
            self.save_model(metrics, last=stop or epoch + 1 == opts.horizon)
            atomic.write_text(self.run_dir / METRICS_FILE, "".join(json.dumps(h) + "\n" for h in self.history))
            self.callback.on_epoch(metrics)
            if stop:
                break
        if opts.epochs is None and self.best_arrays is not None and self.rank == 0:
            # The run ends on the best epoch's weights, measured on the test split.
            self.m.load_arrays(self.model, self.best_arrays)
            best = dict(self.history[self.best["epoch"] - 1])
            best.update({k: round(float(v), 4) for k, v in self.evaluate().items()})
            self.save_model(best, final=True)
            metrics = {**best, "stopped_at_epoch": self.start_epoch}
        return metrics

    def save_model(self, metrics: dict, final: bool = False, last: bool = False) -> None:
        """model.safetensors: the last epoch (fixed --epochs), else the best so far by held-out loss
        (an epoch that is not better leaves the best one's file alone). Only the run's closing card
        (`final`: the best epoch's; `last`: the last epoch's) gets the mixture prior: fitting it
        after every epoch cost a 1,000-image run minutes, and intermediate cards are sampled
        from the standard prior anyway (they carry no calibrated sampling)."""
        if self.options.epochs is None and self.best_arrays is not None and not final:
            if self.best["epoch"] != metrics["epoch"]:
                return
        arrays = self.m.state_arrays(self.model)
        card = self.model_card(metrics, mixture=final or last)
        checkpoint.save(self.run_dir / checkpoint.RUN_MODEL_STEM, arrays, card)


def select(dataset: Dataset, limit: Optional[int] = None, indices: Optional[list[int]] = None) -> tuple[Dataset, dict]:
    """The training images a run uses: `indices` (the tutorial's one- and two-image experiments),
    else the first `limit` (every class in turn when the source lists them class by class:
    data.first_images), else all; returns the dataset and what to record in the card."""
    train_split = dataset.train
    if indices is not None:
        bad = [i for i in indices if i >= len(train_split)]
        if bad:
            raise MnistgenError(
                f"--indices {bad[0]} is out of range: the training set has {len(train_split)} images "
                f"(0-{len(train_split) - 1})"
            )
        return replace(dataset, train=train_split.subset(indices)), {"indices": list(indices)}
    if limit is not None:
        return replace(dataset, train=data.first_images(train_split, limit)), {"limit": limit}
    return dataset, {}


def class_count(dataset: Dataset, names: list[str]) -> int:
    """The labels a model of this data knows: an ImageFolder's named classes, else 0 to the highest
    label, at least MNIST's 10 (up to 256 for other IDX datasets); class names, when given, must
    name each of them, labels without images too (EMNIST's letters are 1-26: label 0 needs one)."""
    count = len(dataset.classes) or max(MNIST_CLASSES, int(dataset.train.labels.max()) + 1)
    if names and len(names) != count:
        empty = [str(label) for label in np.setdiff1d(np.arange(count), dataset.train.labels)]
        unused = f"; labels {data.shown(empty)} have no images but still need names" if len(empty) > 1 else ""
        if len(empty) == 1:
            unused = f"; label {empty[0]} has no images but still needs a name"
        raise MnistgenError(
            f"--class-names has {len(names)} names but the data has {count} classes (labels 0-{count - 1}{unused}): "
            "give one name per label, in order"
        )
    return count


def shard_split(split, rank: int, world: int):
    """Rank `rank`'s share of the training images: every world-th image, the same count on every rank."""
    per_rank = len(split) // world
    return split.subset(rank + world * np.arange(per_rank))


MODEL_FIELDS = ("latent", "channels", "likelihood")  # the options that shape a generator; the rest are TrainOptions


def plan(
    kind: str, dataset: Dataset, recipe: Optional[str] = None, class_names=(), **given
) -> tuple[ModelConfig, TrainOptions]:
    """The model and options of a run: a named recipe, else the default for the data's size
    (config.recipe_for), with every option in `given` that is not None overriding it."""
    chosen = replace(named_recipe(recipe), kind=kind) if recipe else recipe_for(len(dataset.train), kind)
    given = {k: v for k, v in given.items() if v is not None}
    model = {k: given.pop(k) for k in MODEL_FIELDS if k in given}
    config = chosen.model_config(class_count(dataset, list(class_names)), **model)
    options = chosen.train_options(class_names=list(class_names), **given)
    return config, options if config.conditional else replace(options, companion=False)  # a cvae's only


def hold_out(
    dataset: Dataset, seed: int, test: Optional[Split] = None, chosen: bool = False, validation: bool = True
) -> tuple[Dataset, Split, dict]:
    """Hold out a seeded, label-stratified share of the training images (data.holdout): a
    validation part (unless `validation` is False: the classifier does not stop early); a test part
    too unless `test` is given or the source has a test split. `chosen` (train --indices: the user
    named each training image) holds nothing out of them."""
    own_test = test if test is not None else dataset.test
    val_share = 0.0 if chosen or not validation else data.VAL_FRACTION
    test_share = 0.0 if own_test is not None or chosen else data.TEST_FRACTION
    parts = data.holdout(dataset.train, val=val_share, test=test_share, seed=seed)
    record = dict(parts.record)
    record["test"] = "held out" if own_test is None else ("--test" if test is not None else "the source's test split")
    if chosen:
        record["note"] = "--indices names every training image: none is held out"
    if own_test is not None:
        record["test_images"] = len(own_test)
    return replace(dataset, train=parts.train, test=parts.test if own_test is None else own_test), parts.val, record


def train(
    config: ModelConfig,
    dataset: Dataset,
    options: TrainOptions,
    run_dir: Path,
    resume: bool = False,
    callback=None,
    rank: int = 0,
    world: int = 1,
    test: Optional[Split] = None,
    device_name: str = "cpu",
    given: Collection[str] = (),
) -> dict:
    """Train (or resume) a run in `run_dir`; returns the best (early stopping) or last epoch's
    metrics. A seeded share of `dataset` is held out first (`hold_out`). With world > 1 (under
    paddle.distributed.launch), each rank trains on its shard and only rank 0 writes. A CVAE with
    options.companion gets a companion classifier and calibrated sampling (`calibrate`). A resumed
    run keeps its own options; `given` names those of `options` the caller chose, which must be the
    run's (Trainer.load_state)."""
    if rank == 0:
        check_run_dir(run_dir, resume)
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    dataset, val, record = hold_out(dataset, options.seed, test, chosen="indices" in options.extra)
    whole = dataset
    if world > 1:
        dataset = replace(dataset, train=shard_split(dataset.train, rank, world))
    paddle = import_paddle()
    # Paddle names parameters and Adam's accumulators from a process-wide counter; a fresh
    # name scope makes them the same in every run, so a resumed run finds its saved state.
    with paddle.utils.unique_name.guard():
        trainer = Trainer(config, dataset, options, run_dir, callback, rank, world, val, record, whole.train)
        if resume:
            trainer.load_state(given)
        closed = trainer.closed_card() if resume else None
        metrics = trainer.closed_metrics(closed) if closed else trainer.run()
    stage = getattr(callback, "on_stage", lambda text: None)
    if closed:
        stage(f"{run_dir} finished already (epoch {trainer.start_epoch}): nothing to resume")
    if rank == 0 and trainer.options.companion and config.conditional and not (closed and "sampling" in closed):
        metrics.update(
            finish(
                Path(run_dir),
                whole,
                val,
                trainer.options,
                device_name,
                stage,
                _ending(metrics, trainer.options.horizon),
            )
        )
    return metrics


def _ending(metrics: dict, horizon: int) -> str:
    """How the epochs ended, for the stage message: "stopped early at epoch 284 (best 264)", "reached
    the 90-epoch cap (best 88)" (early stopping never triggered), or "after epoch 30"."""
    stopped, best = metrics.get("stopped_at_epoch"), metrics["epoch"]
    if stopped is None:
        return f"after epoch {best}"
    if stopped >= horizon:
        return f"reached the {horizon}-epoch cap (best {best})"
    return f"stopped early at epoch {stopped} (best {best})"


def finish(
    run_dir: Path,
    dataset: Dataset,
    val: Split,
    options: TrainOptions,
    device_name: str,
    stage=lambda text: None,
    ending: str = "",
) -> dict:
    """Train the companion classifier on the model's training images, calibrate sampling with it
    on the held-out validation images, and record both in the model card; `stage(text)` hears of each."""
    stem = run_dir / checkpoint.RUN_MODEL_STEM
    weights = checkpoint.inspect(str(stem) + checkpoint.WEIGHTS_SUFFIX)
    stage(f"{ending}: training the companion classifier" if ending else "training the companion classifier")
    companion = calibrate.companion(
        dataset.train, val, weights.card["classes"], run_dir / COMPANION_STEM, options.seed, dataset.source
    )
    stage("calibrating sampling on the validation images")
    sampling = calibrate.calibrate(weights, companion, val, device_name, options.seed)
    card = dict(weights.card)
    card["companion_classifier"] = {
        "path": COMPANION_STEM + checkpoint.WEIGHTS_SUFFIX,
        "sha256": companion.sha256,
        "val_accuracy": companion.card.get("metrics", {}).get("test_accuracy"),  # scored on the validation images
    }
    card["sampling"] = {**sampling, "classifier": COMPANION_STEM + checkpoint.WEIGHTS_SUFFIX}
    # Only the card changes (same weights, same sha256).
    atomic.write_text(stem.with_name(stem.name + checkpoint.CARD_SUFFIX), json.dumps(card, indent=2) + "\n")
    chosen = {k: v for k, v in card["sampling"].items() if k != "candidates"}
    return {"sampling": chosen, "companion_classifier": card["companion_classifier"]}
