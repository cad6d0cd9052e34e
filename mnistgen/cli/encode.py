"""`mnistgen encode`: images to latent means and standard deviations (CSV on stdout, or .npy, .csv
or .h5), with the tutorial's scatter plots and reconstructions if asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mnistgen.cli.options import DeviceOption, ModelOption, QuietOption, refuse_unread
from mnistgen.cli.parsing import check_model, parse_labels
from mnistgen.cli.plumbing import emit, stderr, user_errors, write_result
from mnistgen.config import DEFAULT_PICTURES
from mnistgen.runtime import Device
from mnistgen.version import __version__

RECON_COLUMNS = 16  # images shown in a --reconstruct figure
FORCE_UNREAD = "{given} replaces --out, --plot and --reconstruct files; the CSV on stdout is none of them: drop it"


def encode(
    ctx: typer.Context,
    sources_: Annotated[
        list[Path],
        typer.Argument(
            metavar="SOURCES",
            help=(
                "PNG files, folders of them (ImageFolder layout gives labels), an IDX images file, an HDF5 file "
                "from generate, or the tutorial's .mat."
            ),
        ),
    ],
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out", "-o", help="Write latents to .npy (means then stds), .csv or .h5 instead of CSV on stdout."
        ),
    ] = None,
    labels: Annotated[
        Optional[str],
        typer.Option(
            "--labels",
            metavar="LABELS",
            help=(
                "CVAE: the label of every image (one digit) or of each image (a comma list); it replaces any labels "
                "the source has (e.g. to encode 7s as 3s)."
            ),
        ),
    ] = None,
    plot: Annotated[
        Optional[Path],
        typer.Option(
            "--plot",
            help=(
                "Also draw the tutorial's scatter plots of means and standard deviations (dimensions 0 and 1) to "
                "this PNG."
            ),
        ),
    ] = None,
    reconstruct: Annotated[
        Optional[Path],
        typer.Option("--reconstruct", help="Also write the first 16 inputs above their reconstructions to this PNG."),
    ] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Encode only the first N images.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace existing --out, --plot and --reconstruct files.")
    ] = False,
    model: ModelOption = DEFAULT_PICTURES,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
) -> None:
    """Encode images to latent means and standard deviations (CSV on stdout by default).

    \b
    Example: mnistgen encode synth/ --model cvae-2d --plot latent.png > latents.csv
    """
    stdout_only = out is None and plot is None and reconstruct is None  # nothing --force could replace
    refuse_unread(ctx, [(stdout_only, ("force",), FORCE_UNREAD)])
    chosen_labels = parse_labels(labels, "--labels") if labels is not None else None
    if out is not None and out.suffix.lower() not in (".npy", ".csv", ".h5", ".hdf5"):
        raise typer.BadParameter(f"{out}: use a name ending in .npy, .csv or .h5", param_hint="--out")
    with user_errors("nothing was left half-written"):
        import numpy as np

        from mnistgen import atomic, export

        outputs = {"--out": out, "--plot": plot, "--reconstruct": reconstruct}
        atomic.check_apart(outputs, sources_)
        atomic.check_new_files(outputs, force)
        if plot is not None:
            export.check_plotting()
        from mnistgen import api  # Paddle: only once the outputs are known to be writable

        weights = check_model(model)
        if plot is not None:
            export.check_latent_scatter(weights.config.latent, weights.name)
            if weights.config.latent > export.SCATTER_DIMS and not quiet:
                stderr(f"note: the latent has {weights.config.latent} dimensions; --plot draws dimensions 0 and 1")
        loaded = api.Model(weights, device)
        found = loaded.read(sources_, chosen_labels, limit)
        if not quiet:
            for note in found.notes:
                stderr(f"note: {note}")
        means, stds = loaded.encode(found.images, found.labels)
        if plot is not None:
            export.write_latent_scatter(plot, means, stds, found.labels, loaded.name)
        if reconstruct is not None:
            shown = slice(0, RECON_COLUMNS)
            rebuilt = loaded.reconstruct(found.images[shown], None if found.labels is None else found.labels[shown])
            export.write_png(reconstruct, export.upscale(export.tile(np.stack([found.images[shown], rebuilt])), 2))
        if out is None:
            write_result(export.latents_csv(found.names, found.labels, means, stds), data="the CSV")
        else:
            provenance = {"model": loaded.name, "model_sha256": loaded.sha256, "mnistgen_version": __version__}
            export.write_latents(out, found.names, found.labels, means, stds, provenance)
            emit({"count": len(means), "out": str(out), "model": loaded.name})
