"""`mnistgen train`: its options (the recipes' defaults shown from config), the checks that need
no data, the launch of data-parallel processes (mnistgen.parallel), then api.fit behind a
progress bar; the metrics as one JSON line.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from mnistgen.cli.options import DeviceOption, QuietOption, bounds, command_line, given_names, refuse_unread
from mnistgen.cli.parsing import parse_int_list, parse_names
from mnistgen.cli.plumbing import emit, stderr, user_errors
from mnistgen.cli.progress import TrainProgress
from mnistgen.config import (
    ALL_RECIPES,
    INPUT_FORMS,
    MAX_PROCESSES,
    Augment,
    ClassifierArch,
    Likelihood,
    ModelConfig,
    Recipe,
    TrainKind,
    TrainOptions,
    listed,
    run_name,
    train_kind,
)
from mnistgen.errors import MnistgenError
from mnistgen.runtime import Device, init_distributed, launched_world, select_device

DATA_FORMS = listed([form.detail for form in INPUT_FORMS])  # what --data takes, from the reader's own table


def _recipes_default(field: str) -> str:
    """train's `[default: ...]` for an option a recipe sets, read from config's recipes (the one place
    their values are written): `the recipe's, 64 in every recipe`, or each value with its recipes."""
    recipes: dict = {}
    for recipe in ALL_RECIPES:
        recipes.setdefault(getattr(recipe, field), []).append(recipe.name)

    def shown(value) -> str:
        if isinstance(value, bool):
            return "on" if value else "off"
        return f"{value:g}" if isinstance(value, float) else str(value)

    if len(recipes) == 1:
        return f"[default: the recipe's, {shown(next(iter(recipes)))} in every recipe]"
    each = "; ".join(f"{shown(value)} ({', '.join(names)})" for value, names in recipes.items())
    return f"[default: the recipe's: {each}]"


def train(
    ctx: typer.Context,
    model: Annotated[
        Optional[TrainKind],
        typer.Option(
            "--model",
            "-m",
            help=(
                "What to train [default: what --recipe trains, else cvae]: vae (unconditional), cvae "
                "(label-conditioned), or the classifier that evaluate and "
                "--min-confidence use."
            ),
        ),
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            "-o",
            help=(
                "Run directory for checkpoints, metrics and sample grids [default: runs/<model>-<latent>d, or "
                "runs/<model> when the data's size chooses the latent]."
            ),
        ),
    ] = None,
    data: Annotated[
        Optional[Path],
        typer.Option(
            "--data",
            exists=True,
            help=f"{DATA_FORMS[0].upper()}{DATA_FORMS[1:]} [default: the MNIST cache].",
        ),
    ] = None,
    download: Annotated[
        bool,
        typer.Option(
            "--download",
            help="Download MNIST into the cache ($MNISTGEN_DATA or ~/.cache/mnistgen) first, checking md5s.",
        ),
    ] = False,
    recipe: Annotated[
        Optional[str],
        typer.Option(
            "--recipe",
            metavar="NAME",
            help=(
                "A named recipe: cvae-2d (the tutorial's), cvae (the shipped default's), vae-2d; options given here "
                "override its fields [default: chosen by the size of the data, see README]."
            ),
        ),
    ] = None,
    test: Annotated[
        Optional[Path],
        typer.Option(
            "--test",
            exists=True,
            help=(
                "A labelled test set in any form --data takes [default: the source's test split, else a seeded "
                "10% of --data held out]."
            ),
        ),
    ] = None,
    epochs: Annotated[
        Optional[int],
        typer.Option(
            "--epochs",
            **bounds("epochs"),
            help="Exactly N passes over the training set [default: the recipe's; else until the held-out loss stops "
            "improving, keeping the best epoch].",
        ),
    ] = None,
    latent: Annotated[
        Optional[int],
        typer.Option(
            "--latent",
            **bounds("latent"),
            help=f"Latent size (2 can be drawn) {_recipes_default('latent')}.",
        ),
    ] = None,
    channels: Annotated[
        Optional[int],
        typer.Option(
            "--channels",
            **bounds("channels"),
            help=f"Width of the first conv (the second has twice as many) {_recipes_default('channels')}.",
        ),
    ] = None,
    shift: Annotated[
        Optional[int],
        typer.Option(
            "--shift",
            **bounds("shift"),
            help=f"Move each training image by up to N pixels, per epoch {_recipes_default('shift')}.",
        ),
    ] = None,
    companion: Annotated[
        bool,
        typer.Option(
            "--classifier/--no-classifier",
            help="Also train a companion classifier on the same images and calibrate sampling with it (a cvae).",
        ),
    ] = TrainOptions.companion,
    likelihood: Annotated[
        Optional[Likelihood],
        typer.Option(
            "--likelihood",
            help=(
                "gaussian: tanh output, squared error (the tutorial); bernoulli: sigmoid output, cross-entropy on "
                f"[0, 1] pixels {_recipes_default('likelihood')}."
            ),
        ),
    ] = None,
    kl_warmup: Annotated[
        Optional[int],
        typer.Option(
            "--kl-warmup",
            **bounds("kl_warmup"),
            help=f"Epochs over which the KL weight rises from 0 to 1 {_recipes_default('kl_warmup')}.",
        ),
    ] = None,
    batch_size: Annotated[
        Optional[int],
        typer.Option(
            "--batch-size",
            **bounds("batch_size"),
            help=f"Images per step, split across --processes {_recipes_default('batch_size')}.",
        ),
    ] = None,
    lr: Annotated[
        Optional[float],
        typer.Option(
            "--lr",
            **bounds("lr"),
            help=f"Adam's peak learning rate (cosine decay to 5% of it) {_recipes_default('lr')}.",
        ),
    ] = None,
    lr_decay: Annotated[
        Optional[bool],
        typer.Option(
            "--lr-decay/--no-lr-decay",
            help=f"Cosine-decay the learning rate over the run {_recipes_default('lr_decay')}.",
        ),
    ] = None,
    beta1: Annotated[
        Optional[float],
        typer.Option(
            "--beta1",
            **bounds("beta1"),
            help=f"Adam's beta1 (the tutorial uses 0.5) {_recipes_default('beta1')}.",
        ),
    ] = None,
    limit: Annotated[
        Optional[int],
        typer.Option(
            "--limit",
            **bounds("limit"),
            help="Train on the first N images only (of every class in turn, for an ImageFolder).",
        ),
    ] = None,
    indices: Annotated[
        Optional[str],
        typer.Option(
            "--indices",
            metavar="INDICES",
            help="Train on these training images only, e.g. 5,25 (the tutorial's one- and two-image experiments).",
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            **bounds("seed"),
            help="Seed for initialisation, shuffling and noise.",
        ),
    ] = TrainOptions.seed,
    eval_every: Annotated[
        int,
        typer.Option(
            "--eval-every",
            **bounds("eval_every"),
            help="Evaluate on the test set every N epochs (and after the last).",
        ),
    ] = TrainOptions.eval_every,
    arch: Annotated[
        ClassifierArch,
        typer.Option(
            "--arch",
            help="With --model classifier: lenet (the verifier of --min-confidence) or judge (evaluate's grader).",
        ),
    ] = ClassifierArch.lenet,
    augment: Annotated[
        Augment,
        typer.Option(
            "--augment",
            help="With --model classifier: shift (whole batch), affine (per image), auto: the arch's own.",
        ),
    ] = Augment.auto,
    class_names: Annotated[
        Optional[str],
        typer.Option(
            "--class-names",
            metavar="NAMES",
            help=(
                "Names of the labels, in order, for another 28x28 IDX dataset (e.g. Fashion-MNIST: "
                '"T-shirt/top,Trouser,...") [default: 0, 1, ...].'
            ),
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its last finished epoch.")
    ] = False,
    distributed: Annotated[
        bool,
        typer.Option(
            "--distributed",
            help=(
                "Require a data-parallel launch (python -m paddle.distributed.launch ... mnistgen train); launched "
                "runs are data-parallel anyway."
            ),
        ),
    ] = False,
    processes: Annotated[
        Optional[int],
        typer.Option(
            "--processes",
            min=1,
            max=MAX_PROCESSES,
            help=(
                "Data-parallel processes on this machine, each on --batch-size/N images per step (the global batch "
                "and loss curve stay those of one process); 1 for one process [default: the usable CPUs, at most "
                "one per 16 images of the batch; on --resume, the run's own]."
            ),
        ),
    ] = None,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
) -> None:
    """Train a VAE, CVAE or classifier on MNIST or your own labelled images (an ImageFolder, .h5/.npz);
    writes checkpoints, metrics.jsonl and sample grids to --out (a CVAE also its companion classifier).

    \b
    Example: mnistgen train --model cvae --data my-digits/ --out runs/mine
    """
    chosen = parse_int_list(indices, "--indices") if indices is not None else None
    names = parse_names(class_names, "--class-names", '"T-shirt/top,Trouser,..."') if class_names is not None else []
    try:
        model = TrainKind(train_kind(model and model.value, recipe))
    except MnistgenError as exc:
        raise typer.BadParameter(str(exc), param_hint="--model/--recipe") from None
    out = out or Path("runs") / run_name(model.value, latent, recipe)
    rank, world = launched_world()
    from mnistgen import parallel

    launcher = world > 1 and not parallel.launched_by_mnistgen()
    unread = _refuse_unread(ctx, model, resume, data, indices, launcher)
    _refuse_combinations(model, distributed, world, processes)
    batch_size = batch_size or Recipe.batch_size  # every recipe's batch; launched ranks split it
    if world == 1 and not distributed and model is not TrainKind.classifier:
        with user_errors(f"kept the last finished epoch in {out}; continue with --resume"):
            count = parallel.choose(processes, batch_size, device.value, out, resume, chosen, limit)
            if count > 1:
                line = command_line(ctx, model=model, **unread)  # the ranks refuse what this run would not read
                raise typer.Exit(parallel.run(shlex.split(line)[1:], count, data, download, model.value))
    elif parallel.launched_by_mnistgen():  # a rank that `mnistgen train` started: --batch-size is the global batch
        parallel.watch_parent()
        batch_size = parallel.per_process_batch(batch_size, world)
    quiet = quiet or rank != 0  # one progress bar, from rank 0
    command = command_line(ctx, model=model, **unread)  # the kind trained, whether given or the recipe's
    given = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "command": command}
    if model is TrainKind.classifier:
        given.update(eval_every=eval_every, augment=augment.value, arch=arch.value, channels=channels)
    else:
        given.update(latent=latent, channels=channels, likelihood=likelihood.value if likelihood else None)
        given.update(beta1=beta1, lr_decay=lr_decay, kl_warmup=kl_warmup, eval_every=eval_every, shift=shift)
        given.update(companion=companion)
    if resume:  # the run's own settings but for those typed, which api.fit refuses when they differ from the run's
        typed = given_names(ctx, given) | {"command"}  # not a default or the recipe's batch this command filled in
        given = {k: v if k in typed else None for k, v in given.items()}
    ranks = f" on {world} processes" if world > 1 else ""
    with user_errors(f"kept the last finished epoch in {out}; continue with --resume"):
        from mnistgen import api

        device_name = select_device(device)  # a device refused here: before any progress bar or process group
        init_distributed(device_name)  # its backend follows the device
        where = f"{device_name}{ranks}, into {out}"
        started = time.perf_counter()
        with TrainProgress(quiet, None if quiet else where, tested=test is not None) as bar:
            if model is TrainKind.classifier:
                callback = (lambda metrics: None) if quiet else _classifier_epoch
            else:
                callback = bar
            metrics = api.fit(
                data,
                out,
                model.value,
                recipe,
                limit=limit,
                indices=chosen,
                test=test,
                class_names=names,
                download=download and rank == 0,
                resume=resume,
                device=device,
                callback=callback,
                on_note=None if quiet else (lambda note: stderr(f"note: {note}")),
                rank=rank,
                world=world,
                **given,
            )
        if rank == 0:
            seconds = round(time.perf_counter() - started, 1)
            emit(
                {
                    **metrics,
                    "run": str(out),
                    "model": str(out / "model.safetensors"),
                    "seconds_total": seconds,
                    "processes": world,
                }
            )


CLASSIFIER_ONLY = ("arch", "augment")
GENERATOR_ONLY = ("latent", "likelihood", "kl_warmup", "beta1", "lr_decay", "shift")
# What those options' None defaults resolve to without a recipe: the values earlier versions recorded
# for them in every command line (weights/classifier.json: `--latent 2 --likelihood gaussian ...`).
UNREAD_DEFAULTS = {
    **{name: getattr(ModelConfig, name) for name in ("latent", "likelihood")},
    **{name: getattr(TrainOptions, name) for name in ("kl_warmup", "beta1", "lr_decay", "shift")},
}


def _refuse_unread(ctx: typer.Context, model: TrainKind, resume: bool, data, indices, launcher: bool) -> dict:
    """Usage errors for options given a value this run would not read (a classifier reads no
    generator option, a generator no classifier option), so that none seems to have had an effect.
    An unread option at its default value (UNREAD_DEFAULTS for those whose default is None) is
    accepted: earlier versions recorded every option in a run's command line (`--arch lenet
    --augment auto` for a cvae, `--latent 2 --likelihood gaussian` for a classifier), and those lines
    must run again.
    Returns the unread parameters as None, for the command line this run records and its
    data-parallel ranks repeat: left out there. (--resume takes the other settings from the run's
    train_state.json, refusing one given another value: the recorded line plus --resume resumes it.)"""
    generator = model is not TrainKind.classifier
    table = (
        (not generator, GENERATOR_ONLY, "only a vae or cvae reads {given}: drop {them}, or use --model vae or cvae"),
        (generator, CLASSIFIER_ONLY, "only --model classifier reads {given}: drop {them}, or add --model classifier"),
        (not generator and resume, ("resume",), "the classifier keeps no checkpoint to resume: drop {given}"),
        (indices is not None, ("limit",), "--indices names every training image: drop {given}"),
        (data is not None, ("download",), "{given} fills the MNIST cache, which --data replaces: drop one of them"),
        (launcher, ("processes",), "paddle.distributed.launch started the processes: drop {given}"),
    )
    refuse_unread(ctx, table, resolved=UNREAD_DEFAULTS)
    return {name: None for applies, names, _ in table if applies for name in names}


def _refuse_combinations(model: TrainKind, distributed: bool, world: int, processes: Optional[int]) -> None:
    """Options that each pass Typer's checks but not together: usage errors, before anything starts."""
    if distributed and world < 2:
        raise typer.BadParameter(
            "start data-parallel training with: python -m paddle.distributed.launch --nproc_per_node N "
            '"$(which mnistgen)" train ...',
            param_hint="--distributed",
        )
    if world > 1 and model is TrainKind.classifier:
        raise typer.BadParameter(
            "the classifier trains on one process: drop the distributed launch", param_hint="--model"
        )
    if processes and processes > 1 and model is TrainKind.classifier:
        raise typer.BadParameter("the classifier trains on one process: drop --processes", param_hint="--processes")


def _classifier_epoch(metrics: dict) -> None:
    test = f"test accuracy {metrics['test_accuracy']:.4f}" if "test_accuracy" in metrics else "no test evaluation"
    stderr(f"epoch {metrics['epoch']}: loss {metrics['train_loss']:.4f}, {test}, {metrics['seconds']:.0f} s")
