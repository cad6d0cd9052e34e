"""`mnistgen evaluate`: a generator's samples, or a set of images, scored by api.evaluate; the
report as a table on stderr and one JSON line on stdout.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Annotated, Optional

import typer

from mnistgen.cli.options import (
    DeviceOption,
    MinConfidenceOption,
    QuietOption,
    SharpenOption,
    TemperatureOption,
    TruncationOption,
    bounds,
    refuse_unread,
)
from mnistgen.cli.parsing import check_classifiers, check_model, parse_int_list
from mnistgen.cli.plumbing import emit, stderr, user_errors
from mnistgen.cli.progress import StageProgress
from mnistgen.config import (
    DEFAULT_GENERATOR,
    DEFAULT_JUDGE,
    EVALUATE_RANGES,
    MAX_SEED,
    VERDICT_HELPS,
    VERDICT_HURTS,
    VERDICT_UNCLEAR,
    PriorKind,
    SamplingRequest,
)
from mnistgen.runtime import Device

VERDICT_WORDS = {
    VERDICT_HELPS: "helps: higher on every seed",
    VERDICT_HURTS: "hurts: lower on every seed",
    VERDICT_UNCLEAR: "unclear: the seeds disagree",
}
TRUSTED_JUDGE = 0.9  # a judge reading fewer real test images right than this gets a note beside its grades
# What --images are scored without: the sampling settings of a model's samples; the verifier
# (--classifier) aside, which also checks a set of images.
SHAPING = tuple(f.name for f in fields(SamplingRequest) if f.name != "classifier")


def _refuse_unread(ctx: typer.Context, images, augment, tstr: bool) -> None:
    """Usage errors for options given that this request would not read, so that none seems to have had an
    effect: --augment's without it, a model's samples' with --images, and --seed with --images unless
    --tstr trains on them."""
    unread = (
        (augment is None, ("limit",), "{given} chooses images of the --augment set: drop it, or add --augment PATH"),
        (
            augment is None,
            ("seeds", "steps"),
            "{given} would set how --augment trains: drop {them}, or add --augment PATH",
        ),
        (bool(images), ("count",), "{given} would sample a model; --images are scored as they are: drop it"),
        (
            bool(images),
            SHAPING,
            "{given} would shape a model's samples; --images are scored as they are: drop {them}",
        ),
        (
            bool(images) and not tstr,
            ("seed",),
            "{given} seeds a model's samples or --tstr's training; scoring --images reads none: drop it, or add --tstr",
        ),
    )
    refuse_unread(ctx, unread)


def evaluate(
    ctx: typer.Context,
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model",
            "-m",
            metavar="NAME|PATH",
            help="Generator to score (name or path) [default: cvae, unless --images is given].",
        ),
    ] = None,
    images: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--images",
            metavar="PATH",
            help=(
                "Score these images instead of a model's samples: a folder (ImageFolder layout), an HDF5/IDX file "
                "from any tool."
            ),
        ),
    ] = None,
    count: Annotated[int, typer.Option("--count", "-n", min=10, max=100_000, help="Samples per digit.")] = 1000,
    classifier: Annotated[
        Optional[str],
        typer.Option(
            "--classifier",
            metavar="NAMES",
            help="The verifier --min-confidence filters with; several, comma-separated, must all agree [default: "
            "the model card's verifier (its companion classifier), else classifier].",
        ),
    ] = None,
    judge_name: Annotated[
        str,
        typer.Option(
            "--judge",
            metavar="NAME|PATH",
            help="The independent classifier that grades (accuracy, FID features, TSTR); never the verifier.",
        ),
    ] = DEFAULT_JUDGE,
    data: Annotated[
        Optional[Path], typer.Option("--data", exists=True, help="MNIST (for the test set) [default: the cache].")
    ] = None,
    tstr: Annotated[
        bool,
        typer.Option(
            "--tstr",
            help="Also train the classifier on the samples and on as many real images; report both test accuracies.",
        ),
    ] = False,
    augment: Annotated[
        Optional[Path],
        typer.Option(
            "--augment",
            exists=True,
            help=(
                "A labelled set in any form train --data takes: train the classifier on it alone and on it plus the "
                "generated images (--model/--count, or --images), the same steps on each --seeds; report both "
                "test accuracies and the gain."
            ),
        ),
    ] = None,
    limit: Annotated[
        Optional[int],
        typer.Option(
            "--limit",
            **bounds("limit", EVALUATE_RANGES),
            help="--augment: use the first N images of the set only (of every class in turn).",
        ),
    ] = None,
    seeds: Annotated[
        str,
        typer.Option(
            "--seeds", metavar="SEEDS", help="--augment: classifier seeds, comma-separated (at least 2 for a spread)."
        ),
    ] = "0,1",
    steps: Annotated[
        int,
        typer.Option(
            "--steps",
            **bounds("steps", EVALUATE_RANGES),
            help="--augment: optimisation steps (batches of 64) per training.",
        ),
    ] = 500,
    test: Annotated[
        Optional[Path],
        typer.Option(
            "--test", exists=True, help="A labelled test set in any form --data takes [default: --data's test split]."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed for the samples.")] = 0,
    temperature: TemperatureOption = None,
    sharpen: SharpenOption = None,
    truncation: TruncationOption = None,
    min_confidence: MinConfidenceOption = None,
    prior: Annotated[
        PriorKind, typer.Option("--prior", help="Prior for the samples, as in generate.")
    ] = PriorKind.auto,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
) -> None:
    """Score a generator: test-set loss, classifier accuracy and confidence on its samples, FID, TSTR.

    \b
    Example: mnistgen evaluate --model cvae-2d --count 1000 --data ../shared/data/mnist
    """
    if model is not None and images:
        raise typer.BadParameter("score a --model or --images, not both", param_hint="--model/--images")
    chosen_seeds = parse_int_list(seeds, "--seeds")  # a malformed value first, as Typer checks the others
    _refuse_unread(ctx, images, augment, tstr)
    asked = SamplingRequest.among(locals(), absent=("precision",)).shaping()  # given, not left to the card
    with user_errors("nothing was written", os_fix="check that the inputs exist and can be read"):
        from mnistgen import api

        if classifier is not None:
            check_classifiers(classifier)
        check_model(judge_name, "--judge")
        if not images:
            check_model(model or DEFAULT_GENERATOR)
        with StageProgress(quiet) as on_progress:
            report = api.evaluate(
                model,
                images,
                count,
                seed,
                data,
                classifier,
                judge_name,
                tstr,
                device,
                augment,
                limit,
                chosen_seeds,
                steps,
                test,
                on_progress=on_progress,
                **asked,
            )
        if not quiet:
            for note in [*report.get("notes", []), report.get("verifier_note")]:
                if note:
                    stderr(f"note: {note}")
            _evaluation_table(report)
        emit(report)


def _evaluation_table(report: dict) -> None:
    """The report on stderr; labels by the judge's class names (an own-data judge's), else by number."""
    from rich.console import Console
    from rich.table import Column, Table

    names = report["classes"]
    named = names != [str(i) for i in range(len(names))]
    folded = [Column(name, overflow="fold") for name in ("measure", "value")]  # a long class name or judge path
    table = Table(*folded, title=f"mnistgen evaluate: {report.get('model', 'images')}")
    for key, value in report.get("test_set", {}).items():
        table.add_row(f"test set {key.replace('test_', '')} (per image)", f"{value:.2f}")
    scores = report["samples"]
    table.add_row("samples", str(scores["images"]))
    table.add_row(f"judge on test images ({report['judge']})", f"{report['judge_test_accuracy']:.2%}")
    if "accuracy" in scores:
        table.add_row(f"judge accuracy ({report['judge']})", f"{scores['accuracy']:.2%}")
        per_label = scores["accuracy_per_label"].items()  # the judge's, so under its row
        table.add_row("  per label (judge)", "  ".join(f"{names[int(d)]}:{a:.1%}" for d, a in per_label))
        if "verifier" in scores:
            table.add_row(f"verifier accuracy ({report['verifier']})", f"{scores['verifier']['accuracy']:.2%}")
    table.add_row("mean confidence", f"{scores['mean_confidence']:.3f}")
    counts = zip(names, scores["class_histogram"])
    table.add_row("predicted classes", " ".join(f"{n}:{v}" if named else str(v) for n, v in counts))
    fid = scores["fid"]
    table.add_row("judge-feature FID", f"{fid:.2f}" if fid is not None else "- (too few images)")
    if "tstr" in report:
        t = report["tstr"]
        table.add_row(
            f"TSTR ({t['train_images']} images, {t['epochs']} epochs)",
            f"synthetic {t['synthetic_accuracy']:.2%} vs real {t['real_accuracy']:.2%}",
        )
    if "augment" in report:
        a = report["augment"]
        where = f"{a['real_images']} real + {a['generated_images']} generated, {a['steps']} steps, seeds {a['seeds']}"
        table.add_row("augment: real alone", f"{a['real_accuracy']:.2%}")
        table.add_row(f"augment: real + generated ({where})", f"{a['augmented_accuracy']:.2%}")
        table.add_row(
            "augment: gain (points)",
            f"{100 * a['gain']:+.2f} (min {100 * a['gain_min']:+.2f}, max {100 * a['gain_max']:+.2f})",
        )
        table.add_row("augment: verdict", VERDICT_WORDS[a["verdict"]])
        copies = a["nearest_training_image"]
        table.add_row("near-copies of training images", f"{copies['near_copies']} ({copies['near_copy_rate']:.2%})")
    Console(stderr=True).print(table)
    if report.get("augment", {}).get("verdict") == VERDICT_HURTS:
        stderr(
            "note: the generated set lowered the classifier's test accuracy on every seed; the README's \"What bounds "
            'the gain" says what was tried and what helps instead'
        )
    if report["judge_test_accuracy"] < TRUSTED_JUDGE:
        stderr(
            f"note: the judge {report['judge']} reads only {report['judge_test_accuracy']:.1%} of the real test images "
            "right, so its grades of the samples are no better: train it longer (train --model classifier --epochs N)"
        )
