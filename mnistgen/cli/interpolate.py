"""`mnistgen interpolate`: a walk through latent space (a GIF, a PNG strip, frames) or, with --grid,
the 2-D manifold; the output and the memory it needs checked before anything is decoded.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from mnistgen.cli.options import DeviceOption, ModelOption, QuietOption, refuse_unread
from mnistgen.cli.parsing import (
    MAX_LATENT_COORD,
    check_model,
    parse_floats,
    parse_int_list,
    parse_label,
    parse_labels,
    parse_points,
)
from mnistgen.cli.plumbing import emit, stderr, user_errors
from mnistgen.config import DEFAULT_PICTURES, MAX_SEED, MIN_GRID
from mnistgen.errors import MnistgenError
from mnistgen.runtime import Device


class WalkOutput(str, Enum):
    gif = "gif"
    png = "png"
    frames = "frames"


class Method(str, Enum):
    lerp = "lerp"
    slerp = "slerp"


DEFAULT_WALK_OUT = {
    WalkOutput.gif: Path("interpolate.gif"),
    WalkOutput.png: Path("interpolate.png"),
    WalkOutput.frames: Path("interpolate_frames"),
}


WALK_ONLY = ("digits", "images", "points", "labels", "steps", "method", "fps", "loop", "seed")
GRID_ONLY = ("dims", "bounds", "sigma")


def _refuse_unread(ctx: typer.Context, grid, to: WalkOutput, images, points, labels) -> None:
    """Usage errors for options given that this request would not read (a grid reads no walk option, a
    walk no grid option; --digit, --labels, --seed and --fps shape some walks only), so that none seems
    to have had an effect. One row per case: when it applies, the parameters it ignores, the message."""
    walk = grid is None
    unread = (
        (not walk, WALK_ONLY, "--grid draws a grid, not a path: drop {given}"),
        (walk, GRID_ONLY, "only --grid reads {given}: drop {them}, or add --grid N"),
        (
            walk and points is None and (images is None or labels is not None),
            ("digit",),
            "{given} labels a --points walk, --images without --labels, or a --grid: drop it",
        ),
        (walk and images is None, ("labels",), "{given} labels the --images walked between: drop it, or add --images"),
        (
            walk and (points is not None or images is not None),
            ("seed",),
            "{given} draws the fixed z of a walk through digits; a --points or --images walk draws nothing: drop it",
        ),
        (walk and to is not WalkOutput.gif, ("fps",), "{given} is a GIF's frame rate: drop it, or use --to gif"),
    )
    refuse_unread(ctx, unread)


def _refuse_unread_by(ctx: typer.Context, conditional: bool, through_digits: bool) -> None:
    """What the model decides a walk through digits reads (once its card is read, before any work): a
    vae's runs between the digits' centroids and draws no z (--seed), a cvae's morphs the label at one
    z in a straight line (--method)."""
    unread = (
        (through_digits and not conditional, ("seed",), "a vae walks between its digits' centroids, drawing nothing: "
         "drop {given}"),
        (through_digits and conditional, ("method",), "a cvae's walk through digits morphs the label in a straight "
         "line: drop {given}"),
    )  # fmt: skip
    refuse_unread(ctx, unread)


def _check_picture_size(loaded, scale: int, grid, digit, steps: int, loop: bool, anchors, found, to: str):
    """Before anything is decoded: refuse a grid or walk (written as `to`) that would not fit in
    memory (`found`: the --images, read)."""
    from mnistgen import explore

    if grid is not None:
        need = explore.grid_bytes(grid, explore.grid_panels(loaded.config, digit), scale)
        explore.check_memory(need, f"--grid {grid} at --scale {scale}", "use a smaller --grid or --scale")
        return
    if found is not None:
        anchors = found.images
    frames = explore.frame_count(len(anchors) if anchors is not None else loaded.config.num_classes, steps, loop)
    explore.check_memory(
        explore.walk_bytes(loaded.weights, frames, scale, to),
        f"a walk of {frames:,} frames at --scale {scale}",
        "use fewer --steps or points to walk through, or a smaller --scale",
    )


def interpolate(
    ctx: typer.Context,
    to: Annotated[
        Optional[WalkOutput],
        typer.Option(
            "--to",
            help=(
                "gif: an animation; png: a strip, one frame per column; frames: a folder of PNGs [default: gif; "
                "--grid draws a png]."
            ),
        ),
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            "-o",
            help=(
                "Output file or folder [default: interpolate.gif / .png / interpolate_frames/, or grid.png with "
                "--grid]."
            ),
        ),
    ] = None,
    digits: Annotated[
        Optional[str],
        typer.Option(
            "--digits",
            metavar="LABELS",
            help=(
                "A path through digits, e.g. 3,8 (CVAE: the label morphs at a fixed z; VAE: class centroids) "
                "[default: 0,1,...,9]."
            ),
        ),
    ] = None,
    images: Annotated[
        Optional[str],
        typer.Option(
            "--images", metavar="PATHS", help="Walk between the encoder means of these images, e.g. a.png,b.png."
        ),
    ] = None,
    points: Annotated[
        Optional[str],
        typer.Option(
            "--points", metavar="POINTS", help='Walk through latent points, e.g. "-2,0;2,0" (several make a path).'
        ),
    ] = None,
    digit: Annotated[
        Optional[str],
        typer.Option(
            "--digit",
            "-d",
            metavar="LABEL",
            help="CVAE label for --points, --images without labels, or --grid: an index or a class name, e.g. 2.",
        ),
    ] = None,
    labels: Annotated[
        Optional[str],
        typer.Option(
            "--labels", metavar="LABELS", help="CVAE labels of the --images, e.g. 3,8 (replacing any they have)."
        ),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, max=1000, help="Frames per segment of the path.")] = 16,
    method: Annotated[
        Method,
        typer.Option(
            "--method",
            help=(
                "lerp: straight lines; slerp: great circles, the radius moving evenly between the points' "
                "(opposite points: through the axis least aligned with the first)."
            ),
        ),
    ] = Method.lerp,
    fps: Annotated[float, typer.Option("--fps", min=0.1, max=100.0, help="GIF frames per second.")] = 12.0,
    scale: Annotated[
        int,
        typer.Option("--scale", min=1, max=32, help="Enlarge each 28-pixel image by this factor (nearest neighbour)."),
    ] = 4,
    loop: Annotated[
        bool, typer.Option("--loop/--no-loop", help="Return to the start, so the GIF cycles smoothly.")
    ] = True,
    seed: Annotated[
        Optional[int],
        typer.Option(
            "--seed",
            min=0,
            max=MAX_SEED,
            help="CVAE label morphs: draw the fixed z from the prior with this seed [default: z = 0].",
        ),
    ] = None,
    grid: Annotated[
        Optional[int],
        typer.Option(
            "--grid",
            min=MIN_GRID,
            max=100,
            help=(
                "Instead of a path: decode an N x N grid over two latent dimensions into one PNG (the tutorial's "
                "manifold)."
            ),
        ),
    ] = None,
    dims: Annotated[
        str, typer.Option("--dims", metavar="I,J", help="The two latent dimensions the grid sweeps (others stay 0).")
    ] = "0,1",
    bounds: Annotated[
        Optional[str],
        typer.Option(
            "--bounds",
            metavar="X1,X2,Y1,Y2",
            help=(
                "Grid range x1,x2,y1,y2 [default: the range of the encoder means on the training data, from the "
                "model card]."
            ),
        ),
    ] = None,
    sigma: Annotated[
        Optional[float],
        typer.Option(
            "--sigma",
            min=0.0,
            max=MAX_LATENT_COORD,
            help="Grid range: +-K standard deviations of the prior instead of the data range.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing --out file, or the frames in an --out folder.")
    ] = False,
    model: ModelOption = DEFAULT_PICTURES,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
) -> None:
    """Decode a walk through latent space to a GIF, a PNG strip or frames; or, with --grid, the 2-D manifold.

    \b
    Example: mnistgen interpolate --to gif --out walk.gif --digits 3,8
    """
    if sum(x is not None for x in (digits, images, points)) > 1:
        raise typer.BadParameter("give one of --digits, --images, --points", param_hint="--digits/--images/--points")
    if grid is not None and to not in (None, WalkOutput.png):
        raise typer.BadParameter(f"--grid draws one PNG picture: drop --to {to.value}", param_hint="--to")
    to = WalkOutput.png if grid is not None else to or WalkOutput.gif
    _refuse_unread(ctx, grid, to, images, points, labels)
    if bounds is not None and sigma is not None:
        raise typer.BadParameter("give --bounds or --sigma, not both", param_hint="--bounds/--sigma")
    chosen_digits = parse_labels(digits, "--digits") if digits is not None else None
    digit = parse_label(digit, "--digit") if digit is not None else None
    chosen_points = parse_points(points) if points is not None else None
    chosen_labels = parse_labels(labels, "--labels") if labels is not None else None
    grid_dims = tuple(parse_int_list(dims, "--dims"))
    if len(grid_dims) != 2:
        raise typer.BadParameter(f"{dims!r}: give two latent dimensions, e.g. 0,1", param_hint="--dims")
    grid_bounds = parse_floats(bounds, 4, "--bounds", "-3,3,-3,3") if bounds is not None else None
    image_paths = [Path(p.strip()) for p in images.split(",")] if images is not None else None
    named = Path("grid.png") if grid is not None else DEFAULT_WALK_OUT[to]
    out = out or named
    with user_errors("nothing was left half-written"):
        from mnistgen import atomic, export, outputs  # no Paddle

        if str(out) == outputs.STDOUT:
            kind = "a folder" if to is WalkOutput.frames else f"a .{to.value} file"
            raise MnistgenError(f"--out -: interpolate writes files, not standard output; name {kind}, such as {named}")
        atomic.check_apart({"--out": out}, image_paths or [])
        export.check_walk_out(out, to.value, force)
        from mnistgen import api, explore  # Paddle: only once the output is known to be writable

        weights = check_model(model)
        _refuse_unread_by(ctx, weights.config.conditional, chosen_digits is not None)
        loaded = api.Model(weights, device)
        anchors = chosen_digits or chosen_points
        explore.check_unlabelled_walk(weights, digit, chosen_labels)  # before --labels is counted against images
        found = loaded.read(image_paths, chosen_labels) if image_paths is not None else None  # read once
        for note in [] if quiet or found is None else found.notes:
            stderr(f"note: {note}")
        _check_picture_size(loaded, scale, grid, digit, steps, loop, anchors, found, to.value)
        if grid is not None:
            picture, spec = loaded.grid(grid, grid_dims, digit, grid_bounds, sigma)  # checks --dims first
            if weights.config.latent > 2 and not quiet:
                stderr(
                    f"note: the latent has {weights.config.latent} dimensions; the grid sweeps "
                    f"{grid_dims[0]} and {grid_dims[1]}, the others are 0"
                )
            export.write_png(out, export.upscale(picture, scale))
            panels = explore.grid_panels(weights.config, digit)
            emit(
                {
                    "grid": grid,
                    "panels": panels,
                    "out": str(out),
                    "x": list(spec.x),
                    "y": list(spec.y),
                    "dims": list(grid_dims),
                    "model": weights.name,
                }
            )
            return
        frames = loaded.interpolate(
            chosen_digits, chosen_points, digit, steps, method.value, loop, seed, found, chosen_labels
        )
        export.write_walk(out, export.upscale(frames, scale), to.value, fps, loop)
        emit({"frames": len(frames), "out": str(out), "to": to.value, "model": weights.name})
