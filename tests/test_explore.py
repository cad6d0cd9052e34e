"""interpolate and encode: paths, grids, GIFs, latent files, plots and their errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import mnistgen
from mnistgen import explore
from mnistgen.cli import app

runner = CliRunner()


def run(*args, code=0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def test_paths_hit_their_endpoints():
    a, b, c = np.array([0.0, 0.0]), np.array([2.0, 0.0]), np.array([2.0, 2.0])
    frames = explore.path(np.stack([a, b, c]), steps=4, method="lerp", loop=False)
    assert len(frames) == 9 and np.allclose(frames[0], a) and np.allclose(frames[4], b) and np.allclose(frames[-1], c)
    looped = explore.path(np.stack([a, b]), steps=4, method="lerp", loop=True)
    assert len(looped) == 8 and np.allclose(looped[4], b) and np.allclose(looped[-1], [0.5, 0])  # cycles back towards a
    u, v = np.array([3.0, 0.0]), np.array([0.0, 3.0])
    arc = explore.path(np.stack([u, v]), steps=8, method="slerp")
    assert np.allclose(np.linalg.norm(arc, axis=1), 3.0, atol=1e-5)  # slerp keeps the radius


def test_slerp_in_a_one_dimensional_latent_is_a_straight_line():
    frames = explore.path(np.array([[-1.0], [2.0]]), steps=3, method="slerp")
    assert np.allclose(frames[:, 0], [-1.0, 0.0, 1.0, 2.0])  # opposite points with no circle between: not NaN


@pytest.mark.parametrize("end", [[2.0, 0.0, 0.0], [1.0, 1e-5, 0.0]])
def test_slerp_between_opposite_points_is_a_smooth_half_circle(end):
    start, end = np.array([-2.0, 0.0, 0.0]), np.array(end)
    arc = explore.path(np.stack([start, end]), steps=16, method="slerp")
    radius = np.linalg.norm(arc, axis=1)
    assert np.allclose(radius, np.linspace(2.0, np.linalg.norm(end), 17), atol=1e-4)  # evenly from |a| to |b|
    assert np.allclose(arc[0], start) and np.allclose(arc[-1], end, atol=1e-4)
    turns = np.arccos(np.clip(np.sum(arc[1:] * arc[:-1], 1) / (radius[1:] * radius[:-1]), -1, 1))
    assert np.allclose(turns, np.pi / 16, atol=1e-4)  # an even turn per frame: no jumps back and forth


def test_grid_latents_follow_the_tutorial_orientation():
    z = explore.grid_latents(explore.GridSpec(3, (-1, 1), (-2, 2)), latent=3)
    assert z.shape == (9, 3)
    assert z[0].tolist() == [-1, 2, 0] and z[2].tolist() == [1, 2, 0] and z[8].tolist() == [1, -2, 0]


def test_default_interpolation_is_a_looping_gif(tmp_path, tiny_cvae, monkeypatch):
    import imageio.v3 as iio

    monkeypatch.chdir(tmp_path)
    summary = json.loads(run("interpolate", "--model", tiny_cvae, "--to", "gif", "--steps", 3).stdout)
    assert summary == {"frames": 30, "out": "interpolate.gif", "to": "gif", "model": "tiny-cvae"}
    frames = iio.imread(tmp_path / "interpolate.gif", index=None)
    assert frames.shape[:3] == (30, 28 * 4, 28 * 4)
    assert iio.immeta(tmp_path / "interpolate.gif").get("loop") == 0  # loops forever
    run("interpolate", "--model", tiny_cvae, "--digits", "1,2", "--steps", 2, "--no-loop", "-o", tmp_path / "once.gif")
    assert "loop" not in iio.immeta(tmp_path / "once.gif")  # no loop count: played once (a count of 1 plays twice)


def test_strip_and_frames(tmp_path, tiny_vae):
    run(
        "interpolate",
        "--model",
        tiny_vae,
        "--to",
        "png",
        "--digits",
        "3,8",
        "--steps",
        5,
        "--no-loop",
        "--scale",
        1,
        "-o",
        tmp_path / "s.png",
    )
    with Image.open(tmp_path / "s.png") as im:
        assert im.size == (6 * 28, 28)
    run(
        "interpolate",
        "--model",
        tiny_vae,
        "--to",
        "frames",
        "--points",
        "-1,0;1,0;1,1",
        "--steps",
        2,
        "-o",
        tmp_path / "f",
    )
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == [f"frame-{i:04d}.png" for i in range(6)]


def test_grid_png(tmp_path, tiny_cvae):
    summary = json.loads(
        run(
            "interpolate", "--model", tiny_cvae, "--grid", 5, "--digit", 2, "--scale", 1, "-o", tmp_path / "g.png"
        ).stdout
    )
    assert summary["x"][0] < summary["x"][1] and summary["dims"] == [0, 1]
    with Image.open(tmp_path / "g.png") as im:
        assert im.size == (5 * 30 - 2, 5 * 30 - 2)
    run("interpolate", "--model", tiny_cvae, "--grid", 3, "--digit", 0, "--sigma", 3, "-o", tmp_path / "p.png")


def test_grid_of_a_conditional_model_without_digit_draws_every_digit(tmp_path, tiny_cvae):
    summary = json.loads(
        run("interpolate", "--model", tiny_cvae, "--grid", 4, "--scale", 1, "-o", tmp_path / "g.png").stdout
    )
    assert summary["panels"] == 10 and summary["grid"] == 4
    with Image.open(tmp_path / "g.png") as im:
        picture = np.asarray(im)
    panel = 4 * 30 - 2  # four tiles of 28 with 2-pixel gaps
    gap, caption = 8, 14  # export.PANEL_GAP, export.PANEL_CAPTION
    assert picture.shape == (2 * (panel + caption) + gap, 5 * (panel + gap) - gap)
    one = json.loads(
        run(
            "interpolate", "--model", tiny_cvae, "--grid", 4, "--digit", 7, "--scale", 1, "-o", tmp_path / "7.png"
        ).stdout
    )
    assert one["panels"] == 1
    with Image.open(tmp_path / "7.png") as im:
        seven = np.asarray(im)
    left, top = 2 * (panel + gap), 1 * (panel + caption + gap) + caption  # digit 7: row 1, column 2
    assert np.array_equal(picture[top : top + panel, left : left + panel], seven)  # the same pixels as --digit 7


def test_walk_between_encoded_images(tmp_path, tiny_cvae):
    run("generate", "-d", "3,8", "-n", 2, "--model", tiny_cvae, "-o", tmp_path / "s", "--seed", 1, "-q")
    images = f"{tmp_path}/s/3/00000.png,{tmp_path}/s/8/00001.png"
    summary = json.loads(
        run(
            "interpolate",
            "--model",
            tiny_cvae,
            "--images",
            images,
            "--labels",
            "3,8",
            "--steps",
            4,
            "-o",
            tmp_path / "w.gif",
        ).stdout
    )
    assert summary["frames"] == 8


@pytest.mark.parametrize(
    "args, code, message",
    [
        (
            ["--digits", "3,8", "--points", "0,0;1,1"],
            2,
            "Error: Invalid value for --digits/--images/--points: give one of --digits, --images, --points",
        ),
        (["--points", "0,0"], 2, "is not a list of at least two points"),
        (["--points", "a,b;c,d"], 2, "is not a list of at least two points"),
        (
            ["--grid", "4", "--dims", "0"],
            2,
            "Error: Invalid value for --dims: '0': give two latent dimensions, e.g. 0,1",
        ),
        (
            ["--grid", "4", "--bounds", "1,2,3"],
            2,
            "Error: Invalid value for --bounds: '1,2,3': give 4 comma-separated numbers, e.g. -3,3,-3,3",
        ),
        (
            ["--to", "mp4"],
            2,
            "Error: Invalid value for '--to': Value error, 'mp4' is not one of 'gif', 'png', 'frames'.",
        ),
        (
            ["--grid", "4", "--digit", "1", "--dims", "0,5"],
            1,
            "Error: --dims 0,5: model tiny-cvae has latent dimensions 0-1; give two different ones",
        ),
        (
            ["--points", "0,0,0;1,1,1", "--digit", "1"],
            1,
            "Error: --points have 3 coordinates but model tiny-cvae has a 2-d latent: give 2 numbers per point",
        ),
        (
            ["--points", "0,0;1,1"],
            1,
            "Error: model tiny-cvae is conditional: pass --digit D to choose the label decoded along the path",
        ),
        (["--digits", "3"], 1, "Error: --digits needs at least two digits to walk between, e.g. 3,8"),
        (["--digits", "3,12"], 1, "Error: --digits 12: model tiny-cvae knows labels 0-9 only\n"),
        (["--points", "0,0;1,1", "--digit", "12"], 1, "Error: --digit 12: model tiny-cvae knows labels 0-9 only\n"),
        (["--grid", "3", "--digit", "12"], 1, "Error: --digit 12: model tiny-cvae knows labels 0-9 only\n"),
        (
            ["--grid", "3", "--bounds", "nan,1,0,1", "--digit", "1", "--out", "b.png"],
            2,
            "Error: Invalid value for --bounds: 'nan,1,0,1': nan is not a latent coordinate: use finite numbers from "
            "-1000000 to 1000000\n",
        ),
        (
            ["--grid", "3", "--bounds", "-inf,1,0,1", "--digit", "1"],
            2,
            "Error: Invalid value for --bounds: '-inf,1,0,1': -inf is not a latent coordinate",
        ),
        (
            ["--points", "nan,0;1,1", "--digit", "1", "--to", "png", "--out", "p.png"],
            2,
            "Error: Invalid value for --points: 'nan,0': nan is not a latent coordinate: use finite numbers from "
            "-1000000 to 1000000\n",
        ),
        (
            ["--points", "0,0;1,1e999", "--digit", "1"],
            2,
            "Error: Invalid value for --points: '1,1e999': inf is not a latent coordinate",
        ),
        (["--images", "a.png,b.png", "--labels", "3,"], 2, "Error: Invalid value for --labels: '3,' has an empty name"),
        (  # it suggested naming the GIF "-.gif"; a frames walk made a folder named "-"
            ["--out", "-"],
            1,
            "Error: --out -: interpolate writes files, not standard output; name a .gif file, such as "
            "interpolate.gif\n",
        ),
        (
            ["--to", "frames", "--out", "-"],
            1,
            "Error: --out -: interpolate writes files, not standard output; name a folder, such as "
            "interpolate_frames\n",
        ),
        (["--digits", "3," + "9" * 5000], 2, "(5000 digits) is too large: use at most 4294967295"),
    ],
)
def test_interpolate_errors(tmp_path, monkeypatch, tiny_cvae, args, code, message):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["interpolate", "--model", str(tiny_cvae), *args])
    assert result.exit_code == code, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


DIGIT_UNREAD = "--digit: --digit labels a --points walk, --images without --labels, or a --grid: drop it"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--grid", "3", "--steps", "30"], "--steps: --grid draws a grid, not a path: drop --steps"),
        (
            ["--grid", "3", "--seed", "1", "--no-loop", "--method", "slerp", "--fps", "10", "--labels", "3"],
            "--labels/--method/--fps/--no-loop/--seed: --grid draws a grid, not a path: drop --labels, --method, "
            "--fps, --no-loop and --seed",
        ),
        (["--grid", "3", "--no-loop"], "--no-loop: --grid draws a grid, not a path: drop --no-loop"),
        (["--grid", "3", "--digits", "3,8"], "--digits: --grid draws a grid, not a path: drop --digits"),
        (["--grid", "3", "--points", "0,0;1,1"], "--points: --grid draws a grid, not a path: drop --points"),
        (["--dims", "1,0"], "--dims: only --grid reads --dims: drop it, or add --grid N"),
        (
            ["--digits", "3,8", "--bounds", "0,1,0,1", "--sigma", "2"],
            "--bounds/--sigma: only --grid reads --bounds and --sigma: drop them, or add --grid N",
        ),
        (["--digits", "3,8", "--digit", "2"], DIGIT_UNREAD),
        (["--digit", "2"], DIGIT_UNREAD),  # the default walk goes through every digit
        (["--images", "a.png,b.png", "--labels", "3,8", "--digit", "2"], DIGIT_UNREAD),
        (["--labels", "3"], "--labels: --labels labels the --images walked between: drop it, or add --images"),
        (
            ["--points", "0,0;1,1", "--digit", "1", "--seed", "3"],
            "--seed: --seed draws the fixed z of a walk through digits; a --points or --images walk draws nothing: "
            "drop it",
        ),
        (["--to", "png", "--fps", "5"], "--fps: --fps is a GIF's frame rate: drop it, or use --to gif"),
        (["--to", "frames", "--fps", "10"], "--fps: --fps is a GIF's frame rate: drop it, or use --to gif"),
    ],
)
def test_interpolate_refuses_options_it_would_not_read(tmp_path, monkeypatch, args, message):
    """A grid read none of the walk's options (--steps, --seed, --labels, --method ...) and a walk none
    of the grid's (--dims, --bounds, --sigma): given, they were dropped without a word. An option
    counts as given when typed with a value other than its default; refused before any model is loaded."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["interpolate", "--model", "no-such-model", *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.endswith(f"\nError: Invalid value for {message}\n")
    assert list(tmp_path.iterdir()) == []


def test_interpolate_takes_unread_options_at_their_defaults(tmp_path, monkeypatch):
    """A wrapper script that always passes them, or a line with every option at its value, asks for
    nothing it will not get: past the usage checks, to the unknown model."""
    monkeypatch.chdir(tmp_path)
    defaults = ["--steps", "16", "--fps", "12", "--loop", "--method", "lerp", "--dims", "0,1"]
    result = runner.invoke(app, ["interpolate", "--model", "no-such-model", "--grid", "3", *defaults])
    assert result.exit_code == 2 and "Invalid value for --model: unknown model 'no-such-model'" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_interpolate_refuses_labels_the_model_lacks(tmp_path, tiny_cvae, tiny_vae):
    run("generate", "-d", "3,8", "-n", 1, "--model", tiny_cvae, "-o", tmp_path / "s", "--seed", 1, "-q")
    images = f"{tmp_path}/s/3/00000.png,{tmp_path}/s/8/00000.png"
    walk = ["interpolate", "--model", tiny_cvae, "--images", images, "--steps", 2, "-o", tmp_path / "w.gif"]
    for labels, message in [
        ("3,8,5", "Error: --labels has 3 values for 2 images: give one for all, or one per image\n"),
        ("3,12", "Error: --labels 12: model tiny-cvae knows labels 0-9 only\n"),  # as --digits says it
    ]:
        assert run(*walk, "--labels", labels, code=1).stderr == message
        assert not (tmp_path / "w.gif").exists()
    assert json.loads(run(*walk, "--labels", "3").stdout)["frames"] == 4  # one label for all, as encode takes it
    vae = run("interpolate", "--model", tiny_vae, "--digits", "3,12", "-o", tmp_path / "v.gif", code=1)
    assert vae.stderr == "Error: --digits 12: model tiny-vae knows labels 0-9 only\n"


def test_interpolate_notes_the_pictures_it_converts(tmp_path, tiny_vae, dataset):
    pics = tmp_path / "pics"
    pics.mkdir()
    for i in range(2):
        Image.fromarray(dataset.test.images[i]).resize((56, 56)).save(pics / f"{i}.png")
    walk = run("interpolate", "--model", tiny_vae, "--images", pics, "--steps", 2, "-o", tmp_path / "w.gif")
    assert walk.stderr == "note: 2 images were resized to 28x28\n"  # as encode says it


def test_a_folder_of_images_is_a_walk_and_one_image_is_not(tmp_path, tiny_cvae, tiny_vae):
    """--images counts the images it reads, not the paths given: one folder can hold the whole walk."""
    run("generate", "-d", "3", "-n", 3, "--model", tiny_cvae, "-o", tmp_path / "s", "--seed", 1, "-q")
    folder = tmp_path / "s" / "3"
    walk = run("interpolate", "--model", tiny_vae, "--images", folder, "--steps", 2, "-o", tmp_path / "w.gif")
    assert json.loads(walk.stdout)["frames"] == 6  # three images, two steps each, looping back
    one = run("interpolate", "--model", tiny_vae, "--images", folder / "00000.png", "-o", tmp_path / "1.gif", code=1)
    assert (
        one.stderr == "Error: --images holds 1 image: a walk needs at least two, e.g. a.png,b.png or a folder of them\n"
    )
    assert not (tmp_path / "1.gif").exists()


@pytest.mark.parametrize(
    "args, given",
    [
        (["--points", "0,0;1,1", "--digit", "5"], "--digit"),
        (["--images", "a.png,b.png", "--labels", "3,4"], "--labels"),  # refused before the images are read
    ],
)
def test_a_vae_walk_refuses_labels_rather_than_dropping_them(tmp_path, tiny_vae, args, given):
    out = tmp_path / "v.gif"
    refused = run("interpolate", "--model", tiny_vae, *args, "-o", out, code=1)
    assert refused.stderr == f"Error: model tiny-vae is an unconditional VAE and has no labels: drop {given}\n"
    assert not out.exists()
    # the CLI refuses --labels on a --points walk as unread; from Python the VAE names both
    with pytest.raises(mnistgen.MnistgenError, match="has no labels: drop --digit and --labels$"):
        mnistgen.load(str(tiny_vae)).interpolate(points=[[0, 0], [1, 1]], digit=1, labels=[3])


def test_walk_checks_labels_in_the_library(tiny_cvae):
    from mnistgen import checkpoint
    from mnistgen.errors import MnistgenError

    weights = checkpoint.inspect_role(str(tiny_cvae), "--model")
    with pytest.raises(MnistgenError, match="^--digits 10: model tiny-cvae knows labels 0-9 only$"):
        explore.walk(weights, 2, "lerp", False, digits=[3, 10])
    with pytest.raises(MnistgenError, match="^--digit 255: model tiny-cvae knows labels 0-9 only$"):
        explore.walk(weights, 2, "lerp", False, points=[[0, 0], [1, 1]], label=255)
    with pytest.raises(MnistgenError, match="^label 12: model tiny-cvae knows labels 0-9 only$"):
        explore.walk(weights, 2, "lerp", False, means=[[0, 0], [1, 1]], labels=[3, 12])


def test_a_refusal_never_reads_the_same_size_as_its_budget():
    from mnistgen.runtime import human_bytes_apart

    assert human_bytes_apart(1.55 * 2**30, 1.5 * 2**30) == ("1.6 GiB", "1.5 GiB")
    assert human_bytes_apart(1.52 * 2**30, 1.5 * 2**30) == ("1,632,087,572 bytes", "1,610,612,736 bytes")


def test_interpolate_refuses_pictures_larger_than_the_memory_budget(tmp_path, monkeypatch, tiny_cvae):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNISTGEN_MAX_MEMORY", "1M")
    walk = run("interpolate", "--model", tiny_cvae, "--steps", 100, "--scale", 8, "--to", "png", code=1)
    assert walk.stderr == (
        "Error: a walk of 1,000 frames at --scale 8 would hold 240.1 MiB in memory, more than the 1.0 MiB an output "
        "may use (MNISTGEN_MAX_MEMORY): use fewer --steps or points to walk through, or a smaller --scale\n"
    )
    grid = run("interpolate", "--model", tiny_cvae, "--grid", 10, "--scale", 8, code=1)
    assert grid.stderr == (
        "Error: --grid 10 at --scale 8 would hold 165.5 MiB in memory, more than the 1.0 MiB an output may use "
        "(MNISTGEN_MAX_MEMORY): use a smaller --grid or --scale\n"
    )
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("MNISTGEN_MAX_MEMORY", "2M")  # 20 frames at --scale 4: 0.5 MiB
    assert json.loads(run("interpolate", "--model", tiny_cvae, "--steps", 2, "-q").stdout)["frames"] == 20


def test_encode_csv_files_and_pictures(tmp_path, tiny_cvae):
    run("generate", "-d", "1,7", "-n", 10, "--model", tiny_cvae, "-o", tmp_path / "s", "--seed", 2, "-q")
    result = run(
        "encode",
        tmp_path / "s",
        "--model",
        tiny_cvae,
        "--plot",
        tmp_path / "lat.png",
        "--reconstruct",
        tmp_path / "rec.png",
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "source,label,mean_0,mean_1,std_0,std_1" and len(lines) == 21
    assert lines[1].startswith(f"{tmp_path}/s/1/00000.png,1,") and lines[-1].startswith(f"{tmp_path}/s/7/00009.png,7,")
    assert all(float(v) > 0 for line in lines[1:] for v in line.split(",")[4:])  # standard deviations
    with Image.open(tmp_path / "rec.png") as im:
        assert im.size == ((16 * 30 - 2) * 2, (2 * 30 - 2) * 2)
    with Image.open(tmp_path / "lat.png") as im:
        assert im.size[0] > 500
    run("encode", tmp_path / "s", "--model", tiny_cvae, "--out", tmp_path / "z.npy")
    assert np.load(tmp_path / "z.npy").shape == (20, 4)


def test_encode_idx_hdf5_and_converted_pictures(tmp_path, tiny_cvae, tiny_vae, mnist_dir):
    import h5py

    idx = run(
        "encode", mnist_dir / "t10k-images-idx3-ubyte.gz", "--model", tiny_cvae, "--limit", 50, "-o", tmp_path / "t.h5"
    )
    assert json.loads(idx.stdout)["count"] == 50
    with h5py.File(tmp_path / "t.h5") as f:
        assert f["means"].shape == (50, 2) and f["labels"][:5].tolist() == [7, 2, 1, 0, 4]
    run("generate", "-d", "4", "-n", 8, "--model", tiny_cvae, "-o", tmp_path / "g.h5", "--seed", 2, "-q")
    assert len(run("encode", tmp_path / "g.h5", "--model", tiny_cvae).stdout.splitlines()) == 9
    Image.new("RGB", (100, 80), (255, 255, 255)).save(tmp_path / "big.png")
    result = run("encode", tmp_path / "big.png", "--model", tiny_vae)
    assert (
        "note: 1 image was resized to 28x28; 1 was not square, so stretched (pad them to squares first to keep their "
        "shape); 1 was converted to grayscale\n" in result.stderr
    )
    assert result.stdout.splitlines()[1].startswith(f"{tmp_path}/big.png,,")


def test_encode_errors(tmp_path, tiny_cvae):
    (tmp_path / "d").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "d" / "a.png")
    (tmp_path / "d" / "model.bin").write_bytes(b"\x00\x01")
    result = runner.invoke(app, ["encode", str(tmp_path / "d"), "--model", str(tiny_cvae)])
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"Error: {tmp_path}/d/model.bin in {tmp_path}/d is not an image file: move it out of the folder, or pass "
        "the image files themselves\n"
    )
    (tmp_path / "bad.png").write_bytes(b"not a png")
    result = runner.invoke(app, ["encode", str(tmp_path / "bad.png"), "--model", str(tiny_cvae)])
    assert result.exit_code == 1 and result.stderr.startswith(f"Error: {tmp_path}/bad.png is not a readable image")
    result = runner.invoke(app, ["encode", str(tmp_path / "d" / "a.png"), "--model", str(tiny_cvae)])
    assert result.exit_code == 1
    assert (
        result.stderr
        == "Error: this model is conditional: its encoder needs each image's label; pass labels (--labels), or use a "
        "source that has labels\n"
    )
    ok = runner.invoke(app, ["encode", str(tmp_path / "d" / "a.png"), "--model", str(tiny_cvae), "--labels", "3"])
    assert ok.exit_code == 0 and ok.stdout.splitlines()[1].startswith(f"{tmp_path}/d/a.png,3,")
    result = runner.invoke(app, ["encode", str(tmp_path / "d" / "a.png"), "--model", str(tiny_cvae), "--labels", "3,4"])
    assert (
        result.exit_code == 1
        and result.stderr == "Error: --labels has 2 values for 1 images: give one for all, or one per image\n"
    )
    result = runner.invoke(app, ["encode", str(tmp_path / "none.png"), "--model", str(tiny_cvae)])
    assert result.exit_code == 1 and "none.png does not exist" in result.stderr
    result = runner.invoke(app, ["encode", str(tmp_path / "d" / "a.png"), "--out", str(tmp_path / "z.txt")])
    assert result.exit_code == 2 and "use a name ending in .npy, .csv or .h5" in result.stderr


def test_a_plot_without_matplotlib_is_refused_before_any_work(tmp_path, tiny_cvae, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the optional extra were not installed
    out, broken = tmp_path / "z.csv", tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")  # read only after the checks: its error would come first otherwise
    argv = ["encode", str(broken), "--model", str(tiny_cvae), "--plot", str(tmp_path / "p.png"), "-o", str(out)]
    result = runner.invoke(app, argv)
    assert result.exit_code == 1, result.output
    assert result.stderr == 'Error: plots need matplotlib: pip install "mnistgen[plot]"\n'
    assert not out.exists()


@pytest.fixture(scope="module")
def one_d_vae(tmp_path_factory, dataset):
    """A tiny VAE with a 1-d latent (train --latent 1): one epoch on 100 images."""
    from mnistgen import train
    from mnistgen.config import ModelConfig
    from mnistgen.data import Dataset

    small = Dataset(dataset.train.subset(slice(0, 100)), dataset.test, dataset.source)
    run_dir = tmp_path_factory.mktemp("models") / "one-d"
    config = ModelConfig(kind="vae", latent=1, channels=8)
    train.train(config, small, train.TrainOptions(epochs=1, seed=1, companion=False), run_dir)
    return run_dir


def test_a_one_d_latent_is_refused_a_plot_and_a_grid_in_one_line(tmp_path, one_d_vae, mnist_dir):
    """--plot indexed a second latent dimension after the whole encode (an IndexError traceback), and
    --grid asked for two different dimensions of a latent that has one."""
    images = mnist_dir / "t10k-images-idx3-ubyte.gz"
    out, plot = tmp_path / "z.csv", tmp_path / "p.png"
    result = run("encode", images, "--model", one_d_vae, "--plot", plot, "-o", out, code=1)
    assert (
        result.stderr
        == "Error: --plot draws latent dimensions 0 and 1, but model one-d has a 1-d latent: drop --plot\n"
    )
    assert list(tmp_path.iterdir()) == []
    result = run("interpolate", "--model", one_d_vae, "--grid", 3, "-o", tmp_path / "g.png", code=1)
    assert result.stderr == (
        "Error: model one-d has a 1-d latent and a grid sweeps two dimensions: walk it with --points instead\n"
    )
    walk = run("interpolate", "--model", one_d_vae, "--points", "-1;1", "--steps", 2, "-o", tmp_path / "w.gif", "-q")
    assert json.loads(walk.stdout)["frames"] == 4


def test_a_plot_names_its_axes_as_the_csv_columns_and_notes_the_dimensions_left_out(tmp_path, monkeypatch):
    """The plot said "dimension 1" and "dimension 2" for what the CSV, --dims and the API call
    dimensions 0 and 1 (mean_0, mean_1)."""
    import matplotlib.pyplot as plt

    from mnistgen import export

    drawn, close = [], plt.close
    monkeypatch.setattr(plt, "close", lambda fig: (drawn.append(fig), close(fig)))
    means, stds = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32), np.full((2, 2), 0.5, np.float32)
    export.write_latent_scatter(tmp_path / "p.png", means, stds, np.array([3, 8]), "m")
    labels = [(ax.get_xlabel(), ax.get_ylabel()) for ax in drawn[0].axes]
    assert labels == [("mean_0", "mean_1"), ("std_0", "std_1")]
    Image.new("L", (28, 28)).save(tmp_path / "a.png")
    result = run("encode", tmp_path / "a.png", "--model", "cvae", "--labels", 3, "--plot", tmp_path / "q.png")
    assert "note: the latent has 16 dimensions; --plot draws dimensions 0 and 1\n" in result.stderr


def test_encode_csv_holds_the_same_float32_as_hdf5_and_hdf5_names_its_model(tmp_path, tiny_cvae, mnist_dir):
    """The CSV rounded to 6 significant digits (up to 5e-6 from the .h5 of the same images), and the
    .h5 did not say which model's encoder made its latents."""
    import csv

    import h5py

    from mnistgen import checkpoint
    from mnistgen.version import __version__

    images = mnist_dir / "t10k-images-idx3-ubyte.gz"
    run("encode", images, "--model", tiny_cvae, "--limit", 30, "-o", tmp_path / "z.csv")
    run("encode", images, "--model", tiny_cvae, "--limit", 30, "-o", tmp_path / "z.h5")
    with open(tmp_path / "z.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    from_csv = np.array([[float(v) for v in row[2:]] for row in rows], dtype=np.float32)
    with h5py.File(tmp_path / "z.h5") as f:
        assert np.array_equal(from_csv, np.concatenate([f["means"][:], f["stds"][:]], axis=1))
        assert [int(row[1]) for row in rows] == f["labels"][:].tolist()
        assert dict(f.attrs) == {
            "model": "tiny-cvae",
            "model_sha256": checkpoint.inspect(str(tiny_cvae)).sha256,
            "mnistgen_version": __version__,
        }


@pytest.mark.parametrize(
    "model, given, message",
    [
        ("vae-2d", ["--seed", "3"], "--seed: a vae walks between its digits' centroids, drawing nothing: drop --seed"),
        (
            "cvae-2d",
            ["--method", "slerp"],
            "--method: a cvae's walk through digits morphs the label in a straight line: drop --method",
        ),
    ],
)
def test_a_walk_through_digits_refuses_what_its_model_would_not_read(tmp_path, model, given, message):
    """Decided by the model (a vae's centroids, a cvae's label morph), so refused once its card is read."""
    out = tmp_path / "walk.gif"
    result = runner.invoke(app, ["interpolate", "--model", model, "--digits", "1,7", "--out", str(out), *given])
    assert result.exit_code == 2, result.output
    assert result.stderr.endswith(f"Error: Invalid value for {message}\n")
    assert list(tmp_path.iterdir()) == []
