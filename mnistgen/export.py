"""Writers for generated images: PNG files (atomic), image grids, walks, latents; what a dataset
takes on disk (a low estimate, for generate's check before any work); and the checks a walk's
output gets before any work. No Paddle here."""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import json
import os
import struct
import sys
import tarfile
import zlib
from pathlib import Path
from typing import BinaryIO, Optional

import numpy as np

from mnistgen import atomic
from mnistgen.config import UNLABELLED
from mnistgen.data import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, idx_header
from mnistgen.errors import MnistgenError

GRID_PAD = 2  # pixels between tiles in a grid
GRID_BACKGROUND = 0  # black gaps, like MNIST's background


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_ZLIB_LEVEL = 6  # zlib's default, as PIL uses; 28x28 digits compress to ~300-400 bytes


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


_PNG_END = _png_chunk(b"IEND", b"")


def png_bytes(image: np.ndarray, text: Optional[dict] = None) -> bytes:
    """uint8 (H, W) -> PNG bytes (8-bit grayscale, no filter).

    A direct encoder: the PNG format for one grayscale plane is a header, the zlib-compressed
    rows (each prefixed with filter byte 0) and an end marker. About 2x faster than going
    through PIL for small images, which matters at thousands of files per second.
    """
    image = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = image.shape
    rows = np.zeros((h, w + 1), dtype=np.uint8)
    rows[:, 1:] = image
    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit depth, grayscale, deflate, no filter, no interlace
    notes = b"".join(
        _png_chunk(b"tEXt", k.encode("latin-1") + b"\0" + str(v).encode("latin-1", "replace"))
        for k, v in (text or {}).items()
    )
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + notes
        + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), PNG_ZLIB_LEVEL))
        + _PNG_END
    )


def write_png(path: Path, image: np.ndarray) -> None:
    """Write a uint8 (H, W) image as PNG, atomically."""
    atomic.write_bytes(path, png_bytes(image))


def tile(images: np.ndarray, pad: int = GRID_PAD) -> np.ndarray:
    """uint8 (R, C, H, W) -> one uint8 image with R rows and C columns of tiles."""
    rows, cols, h, w = images.shape
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), GRID_BACKGROUND, dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = images[r, c]
    return out


PANEL_GAP = 8  # pixels between the panels of a multi-panel picture
PANEL_CAPTION = 14  # height of the caption strip above each panel
PANEL_COLUMNS = 5  # panels per row: ten digits make two rows
PANEL_BACKGROUND = 96  # grey between panels and behind captions, so black-edged panels stand apart


CAPTION_MARGIN = 2  # pixels left of a caption
CAPTION_CUT = ".."  # ends a caption cut to its panel's width


def panels(pictures: list[np.ndarray], captions: list[str], columns: int = PANEL_COLUMNS) -> np.ndarray:
    """Same-sized uint8 pictures (H, W) -> one uint8 picture of captioned panels, `columns` a row
    (captions drawable, see `drawable_caption`)."""
    from PIL import Image, ImageDraw

    h, w = pictures[0].shape
    cols = min(columns, len(pictures))
    rows = -(-len(pictures) // cols)
    cell_h, cell_w = h + PANEL_CAPTION, w + PANEL_GAP
    canvas = Image.new("L", (cols * cell_w - PANEL_GAP, rows * (cell_h + PANEL_GAP) - PANEL_GAP), PANEL_BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i, (picture, caption) in enumerate(zip(pictures, captions)):
        left, top = (i % cols) * cell_w, (i // cols) * (cell_h + PANEL_GAP)
        text = drawable_caption(caption, i, lambda t: draw.textlength(t) <= w - CAPTION_MARGIN)
        draw.text((left + CAPTION_MARGIN, top + 1), text, fill=255)
        canvas.paste(Image.fromarray(picture), (left, top + PANEL_CAPTION))
    return np.asarray(canvas)


def drawable_caption(caption: str, index: int, fits) -> str:
    """What PIL's default font can draw of a caption, within its panel (`fits`): that font has
    printable ASCII only (a class named "É" drew as a box), so other names are folded to ASCII
    ("É" -> "E") with the panel's number beside them, "E (5)", as a fold can meet another class's
    name; a caption too wide for its panel is cut (it was drawn over the next panel's)."""
    import unicodedata

    text = caption
    if not (caption.isascii() and caption.isprintable()):
        folded = unicodedata.normalize("NFKD", caption).encode("ascii", "ignore").decode()
        folded = "".join(c for c in folded if c.isprintable())
        text = f"{folded} ({index})" if folded.strip() else f"({index})"
    if fits(text):
        return text
    suffix = text[text.rindex(" (") :] if text != caption and " (" in text else ""  # the number is kept
    stem = text[: len(text) - len(suffix)]
    while stem and not fits(stem + CAPTION_CUT + suffix):
        stem = stem[:-1]
    return stem + CAPTION_CUT + suffix


# -- dataset writers ----------------------------------------------------------------------------
# Each writer is a context manager: `write(batch, position)` puts a batch of images at their
# position in this job's sequence; leaving the block normally commits (rename into place),
# leaving it through an exception (Ctrl-C included) removes every temporary file.

IMAGE_SIDE = 28
# Images per HDF5 chunk. A reader's random access (a shuffling DataLoader's f["images"][i]) decompresses
# a whole chunk per item: 1,024 images (0.8 MB) let h5py read ~900 random items/s; 128 (0.1 MB) ~7,000,
# for a file about 1% larger.
HDF5_CHUNK = 128
HDF5_GZIP_LEVEL = 4
GRID_MAX_COLUMNS = 200
GRID_WRAP = 20  # columns per row when one label's images wrap


class FileWriter:
    """Base for single-file formats: one temporary file, renamed at the end (`replace` False: refused
    when the name was taken meanwhile, atomic.commit). `attrs` is read when the file is finished too,
    so what the run measured by then (its acceptance rate) is recorded."""

    def __init__(self, path: Path, total: int, latent: int, attrs: dict, labelled: bool = True, replace: bool = True):
        self.path, self.total, self.latent, self.attrs = Path(path), total, latent, attrs
        self.labelled = labelled  # False: an unconditional model's images, stored without labels
        self.replace = replace
        self._stack = None

    def __enter__(self):
        self._stack = contextlib.ExitStack()
        self.tmp = self._stack.enter_context(atomic.atomic_path(self.path, self.replace))
        try:
            self.open()
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.finish(committing=exc_type is None)
        except BaseException:  # e.g. disk full while compressing: the temporary goes, the error stays
            self._stack.__exit__(*sys.exc_info())
            raise
        return self._stack.__exit__(exc_type, exc, tb)

    def open(self) -> None: ...

    def finish(self, committing: bool) -> None: ...


class GuardedFile(io.RawIOBase):
    """A file for h5py that never reports a write error to HDF5, but remembers the first one.

    HDF5 crashes the interpreter (at exit) after a failed write to a full disk or past a file-size
    limit; through this wrapper it never sees the failure, and the writer raises it instead.
    """

    def __init__(self, path: Path):
        super().__init__()
        self.raw = open(path, "wb+", buffering=0)  # unbuffered: a seek never flushes, so only write() can fail
        self.error: Optional[OSError] = None

    def readable(self):
        return True

    def writable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        return self.raw.seek(offset, whence)

    def tell(self):
        return self.raw.tell()

    def readinto(self, buffer):
        return self.raw.readinto(buffer)

    def _guard(self, action, *args):
        if self.error is None:
            try:
                return action(*args)
            except OSError as exc:
                self.error = exc
        return None

    def write(self, data):
        view = memoryview(data).cast("B")
        self._guard(self._write_all, view)
        return len(view)

    def _write_all(self, view: memoryview) -> None:
        """An unbuffered write may take part of the bytes (at a size limit): write the rest, or fail."""
        while view:
            written = self.raw.write(view)
            if not written:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[written:]

    def truncate(self, size=None):
        self._guard(self.raw.truncate, size)
        return size

    def flush(self):
        if not self.raw.closed:
            self._guard(self.raw.flush)

    def close(self):
        if not self.raw.closed:
            self.flush()
            self.raw.close()
        super().close()

    def check(self) -> None:
        if self.error is not None:
            raise self.error


def write_hdf5_attrs(h5file, attrs: dict) -> None:
    """What an HDF5 output records (generate's settings, encode's model), as `hdf5_attr` stores each."""
    for key, value in attrs.items():
        h5file.attrs[key] = hdf5_attr(value)


def hdf5_attr(value):
    """A recorded setting as an HDF5 attribute: lists and dicts as JSON text; a string that is no UTF-8 (a
    path or command line with a non-UTF-8 file name, held by Python as surrogates) as its original bytes,
    which h5py reads back as the same string."""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")
    return value


class Hdf5Writer(FileWriter):
    """`images` uint8 (N, 28, 28), `labels` uint8 (N,) (none for an unconditional model), `latents`
    float32 (N, d); chunked, gzip."""

    def open(self):
        import h5py

        self.guard = GuardedFile(self.tmp)
        self.file = h5py.File(self.guard, "w")
        chunk = max(1, min(HDF5_CHUNK, self.total))
        opts = {"compression": "gzip", "compression_opts": HDF5_GZIP_LEVEL, "shuffle": True}

        def dataset(name, shape, dtype):  # an empty shard's are contiguous: HDF5 chunks no empty data
            chunked = {"chunks": (chunk, *shape[1:]), **opts} if self.total else {}
            return self.file.create_dataset(name, shape, dtype, **chunked)

        self.images = dataset("images", (self.total, IMAGE_SIDE, IMAGE_SIDE), "uint8")
        if self.labelled:
            self.labels = dataset("labels", (self.total,), "uint8")
        self.latents = dataset("latents", (self.total, self.latent), "float32")
        write_hdf5_attrs(self.file, self.attrs)

    def write(self, images, labels, latents, position: int):
        end = position + len(images)
        self.images[position:end] = images
        if self.labelled:
            self.labels[position:end] = labels
        self.latents[position:end] = latents
        self.guard.check()

    def finish(self, committing):
        if committing:
            write_hdf5_attrs(self.file, self.attrs)  # with what the run measured
        self.file.close()
        self.guard.close()
        self.guard.check()


class NpzWriter(FileWriter):
    """`images`, `labels` (none for an unconditional model), `latents` in one compressed .npz (held in
    memory until the end)."""

    @staticmethod
    def held_bytes(total: int, latent: int) -> int:
        """What the arrays take (numpy writes them into the zip in 16 MiB pieces)."""
        return total * (IMAGE_SIDE * IMAGE_SIDE + 1 + 4 * latent)

    def open(self):
        self.arrays = {
            "images": np.zeros((self.total, IMAGE_SIDE, IMAGE_SIDE), np.uint8),
            "labels": np.zeros(self.total, np.uint8),
            "latents": np.zeros((self.total, self.latent), np.float32),
        }
        if not self.labelled:
            del self.arrays["labels"]

    def write(self, images, labels, latents, position: int):
        end = position + len(images)
        self.arrays["images"][position:end] = images
        if self.labelled:
            self.arrays["labels"][position:end] = labels
        self.arrays["latents"][position:end] = latents

    def finish(self, committing):
        if committing:
            with open(self.tmp, "wb") as f:  # a file object: numpy adds no ".npz" suffix
                np.savez_compressed(
                    f, **self.arrays, attrs=np.array(json.dumps(self.attrs))
                )  # a str array: loads without pickle


class GridWriter(FileWriter):
    """One preview PNG: a row per label, enlarged by `scale`. A lone label (an unconditional
    model) wraps at GRID_WRAP columns when the count divides evenly - the tutorial's 10 x 20."""

    def __init__(self, path, total, latent, attrs, rows: int, scale: int = 1, replace: bool = True):
        super().__init__(path, total, latent, attrs, replace=replace)
        self.rows, self.columns = self.shape(total, rows)
        self.scale = scale

    @staticmethod
    def shape(total: int, rows: int) -> tuple[int, int]:
        """(rows, columns) of tiles: a row per label; a lone label wraps at GRID_WRAP columns."""
        if rows == 1 and total > GRID_WRAP and total % GRID_WRAP == 0:
            rows = total // GRID_WRAP
        return rows, total // rows

    @classmethod
    def held_bytes(cls, total: int, rows: int, scale: int) -> int:
        """The tiles, plus the picture three times over (tiled, enlarged, PNG rows)."""
        rows, columns = cls.shape(total, rows)
        side = IMAGE_SIDE + GRID_PAD
        return total * IMAGE_SIDE * IMAGE_SIDE + 3 * (rows * side) * (columns * side) * scale * scale

    def open(self):
        self.images = np.zeros((self.total, IMAGE_SIDE, IMAGE_SIDE), np.uint8)

    def write(self, images, labels, latents, position: int):
        self.images[position : position + len(images)] = images

    def finish(self, committing):
        if committing:
            grid = upscale(tile(self.images.reshape(self.rows, self.columns, IMAGE_SIDE, IMAGE_SIDE)), self.scale)
            self.tmp.write_bytes(
                png_bytes(
                    grid, text={k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in self.attrs.items()}
                )
            )


class IdxWriter:
    """The MNIST IDX pair `PREFIX-images-idx3-ubyte.gz` + `PREFIX-labels-idx1-ubyte.gz`, both
    streamed (the headers carry the total up front), so nothing grows with the count. `replace`: as
    FileWriter's."""

    def __init__(self, images_path: Path, labels_path: Path, total: int, replace: bool = True):
        self.images_path, self.labels_path, self.total = Path(images_path), Path(labels_path), total
        self.replace = replace

    def __enter__(self):
        self._stack = contextlib.ExitStack()
        try:
            self.images_tmp = self._stack.enter_context(atomic.atomic_path(self.images_path, self.replace))
            self.labels_tmp = self._stack.enter_context(atomic.atomic_path(self.labels_path, self.replace))
            self.stream = self._gzip(self.images_tmp, self.images_path, compresslevel=6)
            self.labels = self._gzip(self.labels_tmp, self.labels_path)
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        self.stream.write(idx_header(IDX_IMAGES_MAGIC, (self.total, IMAGE_SIDE, IMAGE_SIDE)))
        self.labels.write(idx_header(IDX_LABELS_MAGIC, (self.total,)))
        self.written = 0
        return self

    def _gzip(self, temporary: Path, final: Path, **options):
        """A gzip stream into `temporary` whose header names `final` (gunzip -N restores that name, not
        the hidden temporary one) and no time: the same images give the same bytes."""
        raw = self._stack.enter_context(open(temporary, "wb"))
        return self._stack.enter_context(gzip.GzipFile(final.name, "wb", fileobj=raw, mtime=0, **options))

    def write(self, images, labels, latents, position: int):
        assert position == self.written, "IDX is written in order"
        self.stream.write(np.ascontiguousarray(images, np.uint8).tobytes())
        self.labels.write(np.broadcast_to(np.asarray(labels, np.uint8), (len(images),)).tobytes())
        self.written += len(images)

    def __exit__(self, exc_type, exc, tb):
        return self._stack.__exit__(exc_type, exc, tb)  # closes the streams, then commits or removes


# -- what a dataset takes on disk ---------------------------------------------------------------
# Bytes per image, measured on the shipped models (2,000 images each at --precision fp32: PNG files
# 253 B on average for cvae, 463 for cvae-2d, 143 the smallest; HDF5 219-375, NPZ 211-359, IDX
# 153-353; a metadata.jsonl line 80 B for a 2-d latent, 225 for 16-d) and rounded down, so an
# estimate errs low: generate refuses a job only when even this cannot fit.
PNG_FILE_BYTES = 200  # one digit's PNG (file systems that keep small files inline, btrfs, store about this)
METADATA_LINE_BYTES = 60  # a metadata.jsonl line without its latent (file_name, label, seed)
Z_TEXT_BYTES = 9  # per latent dimension written as text ("-0.123456, ")
PACKED_IMAGE_BYTES = 150  # HDF5, NPZ, IDX: compressed pixels, label and latent of one image


def disk_bytes(fmt: str, images: int, latent: int, labelled: bool) -> int:
    """A low estimate of what `images` images written as `fmt` take on disk: the bytes themselves.
    A PNG file takes a whole allocation unit on most file systems (4 KiB on ext4), but not on those
    that keep small files inline, so the unit is not added: a PNG folder's real bound there is its
    files, which generate checks against the free inodes instead. A tar's members are padded to
    512-byte blocks: a header and at least one block each for the PNG, the .json and a label's .cls."""
    if fmt == "png":
        return images * (PNG_FILE_BYTES + METADATA_LINE_BYTES + Z_TEXT_BYTES * latent)
    if fmt == "tar":
        return images * 2 * tarfile.BLOCKSIZE * (3 if labelled else 2)
    if fmt in ("hdf5", "npz", "idx"):
        return images * PACKED_IMAGE_BYTES
    if fmt == "grid":
        return 0  # one picture, bounded by the memory check
    raise ValueError(f"disk_bytes does not know --format {fmt}")


TAR_MTIME = 946_684_800  # 2000-01-01: a fixed time stamp, so the same seed gives the same bytes
TAR_MIN_KEY_WIDTH = 6  # 000000.png: WebDataset's usual key width; wider for more images
# The keys of each tar image's .json, written in this order (records.py recognises generate's tars by
# them): always TAR_RECORD's three; the class name only when the model names its classes.
TAR_SEED, TAR_LABEL, TAR_CLASS, TAR_LATENT = "seed", "label", "class", "z"
TAR_RECORD = frozenset({TAR_SEED, TAR_LABEL, TAR_LATENT})
Z_DECIMALS = 6  # a latent written as text (a tar's .json, a PNG folder's metadata.jsonl): float32's ~7 digits


def tar_key_width(total: int) -> int:
    return max(TAR_MIN_KEY_WIDTH, len(str(total - 1)))


class TarWriter(FileWriter):
    """A WebDataset shard: for each image `KEY.png`, `KEY.cls` (the label as text; none for an
    unconditional model) and `KEY.json` (seed, label, the label's class name when the model names
    its classes, latent z: a tar carries no manifest, so the names ride with each sample), KEY the
    image's index in the whole job, so keys stay unique across shards. To a file (atomically, like every writer) or,
    with `stream`, straight into a binary stream such as stdout; nothing is held but one block."""

    def __init__(
        self,
        path: Optional[Path],
        total: int,
        latent: int,
        attrs: dict,
        first: int,
        key_width: int,
        stream: Optional[BinaryIO] = None,
        replace: bool = True,
    ):
        super().__init__(path or Path("-"), total, latent, attrs, replace=replace)
        self.first, self.key_width, self.stream = first, key_width, stream
        self.seed, self.classes = attrs.get("seed"), attrs.get("classes")

    def __enter__(self):
        if self.stream is None:
            return super().__enter__()
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.stream is None:
            return super().__exit__(exc_type, exc, tb)
        self.finish(committing=exc_type is None)
        return False

    def open(self):
        self.out = self.stream if self.stream is not None else open(self.tmp, "wb")
        self.offset = 0

    def _member(self, name: str, payload: bytes) -> bytes:
        """A USTAR header, the payload and its padding to whole 512-byte blocks (what tarfile
        writes, done here so a stream and a file get the same bytes, one write per block)."""
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(payload), TAR_MTIME, 0o644
        pad = -len(payload) % tarfile.BLOCKSIZE
        return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict") + payload + tarfile.NUL * pad

    def _emit(self, data: bytes) -> None:
        self.out.write(data)
        self.offset += len(data)

    def write(self, images, label: int, latents, position: int):
        """Images of one label (its true label: UNLABELLED for an unconditional model) at `position`."""
        labelled = label != UNLABELLED
        members = []
        for offset, (image, z) in enumerate(zip(images, latents)):
            key = f"{self.first + position + offset:0{self.key_width}d}"
            if labelled:
                members.append(self._member(f"{key}.cls", str(int(label)).encode()))
            meta = {TAR_SEED: self.seed, TAR_LABEL: int(label) if labelled else None}
            if labelled and self.classes:
                meta[TAR_CLASS] = self.classes[label]
            meta[TAR_LATENT] = [round(float(v), Z_DECIMALS) for v in z]
            members.append(self._member(f"{key}.json", json.dumps(meta).encode()))
            members.append(self._member(f"{key}.png", png_bytes(image)))
        self._emit(b"".join(members))

    def finish(self, committing):
        try:
            if committing:  # the end-of-archive blocks, padded to a whole record: only a complete archive
                end = tarfile.NUL * (2 * tarfile.BLOCKSIZE)
                self._emit(end + tarfile.NUL * (-(self.offset + len(end)) % tarfile.RECORDSIZE))
                self.out.flush()
            elif self.stream is not None:
                with contextlib.suppress(OSError):  # a closed pipe: no reader is left to tell
                    self.out.flush()  # what was written stays: a reader sees a truncated archive
        finally:
            if self.stream is None:
                self.out.close()


# -- latent-space pictures ----------------------------------------------------------------------

GIF_SUFFIX = ".gif"
WALK_SUFFIXES = {"gif": GIF_SUFFIX, "png": ".png"}  # what a walk's --out file must be called, by --to
DIGIT_COLORS = (
    "tab:blue",
    "tab:red",
    "tab:green",
    "gold",
    "tab:pink",
    "tab:cyan",
    "tab:brown",
    "tab:orange",
    "limegreen",
    "blueviolet",
)
PLOT_DPI = 100
PLOT_POINT_SIZE = 6
SCATTER_DIMS = 2  # encode --plot draws latent dimensions 0 and 1
PLOT_INSTALL_HINT = 'plots need matplotlib: pip install "mnistgen[plot]"'


def upscale(images: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement of uint8 (..., H, W)."""
    return images if scale <= 1 else images.repeat(scale, axis=-2).repeat(scale, axis=-1)


def write_gif(path: Path, frames: np.ndarray, fps: float, loop: bool = True) -> None:
    """uint8 frames (F, H, W) -> an animated GIF (imageio), written atomically. imageio encodes to
    bytes and atomic writes them: a failed write leaves no half-closed imageio writer behind."""
    import imageio.v3 as iio

    duration_ms = 1000.0 / fps
    # loop 0: for ever; no loop count at all (no NETSCAPE block): played once (a count N plays N + 1 times)
    looping = {"loop": 0} if loop else {}
    payload = iio.imwrite("<bytes>", list(frames), extension=GIF_SUFFIX, duration=duration_ms, **looping)
    atomic.write_bytes(path, payload)


def write_walk(out: Path, frames: np.ndarray, to: str, fps: float, loop: bool) -> None:
    """Frames as a GIF ("gif"), one strip with a frame per column ("png"), or a folder of PNGs ("frames")."""
    if to == "gif":
        write_gif(out, frames, fps, loop)
    elif to == "png":
        write_png(out, np.concatenate(list(frames), axis=1))
    else:
        write_frames(out, frames)


FRAME_PREFIX, FRAME_SUFFIX = "frame-", ".png"  # folder/frame-0000.png ...
FRAME_MIN_WIDTH = 4


def _is_frame(name: str) -> bool:
    index = name.removeprefix(FRAME_PREFIX).removesuffix(FRAME_SUFFIX)
    return len(index) == len(name) - len(FRAME_PREFIX) - len(FRAME_SUFFIX) and index.isascii() and index.isdigit()


def write_frames(folder: Path, frames: np.ndarray) -> list[Path]:
    """One PNG per frame: folder/frame-0000.png ...; frames of an earlier, longer walk are then
    removed, so the folder holds this walk only (other files are left alone)."""
    folder.mkdir(parents=True, exist_ok=True)
    width = max(FRAME_MIN_WIDTH, len(str(len(frames) - 1)))
    paths = [folder / f"{FRAME_PREFIX}{i:0{width}d}{FRAME_SUFFIX}" for i in range(len(frames))]
    for path, frame in zip(paths, frames):
        write_png(path, frame)
    written = {path.name for path in paths}
    for entry in folder.iterdir():
        if _is_frame(entry.name) and entry.name not in written and entry.is_file():
            entry.unlink()
    return paths


def check_walk_out(out: Path, to: str, force: bool = False) -> None:
    """Before any work: `out` can take a walk written as `to` ("gif", "png": one file; "frames": a
    folder, made when missing, that must be empty unless `force`), and its name says what it holds."""
    suffix = WALK_SUFFIXES.get(to)
    if suffix is not None and out.suffix.lower() != suffix:
        raise MnistgenError(
            f"--out {out}: --to {to} writes a {suffix[1:].upper()} file; name it {out.with_suffix(suffix).name}"
        )
    if to == "frames" and out.suffix.lower() in WALK_SUFFIXES.values():
        raise MnistgenError(f"--out {out}: --to frames writes a folder of PNGs; give a folder name, such as {out.stem}")
    if to != "frames":
        atomic.check_new_file(out, "--out", force)
        return
    atomic.check_name_fits(out, "--out")
    if out.exists() and not out.is_dir():
        raise MnistgenError(f"--out {out} is a file: --to frames writes a folder of PNGs; give a directory")
    atomic.check_writable_dir(out)
    if out.is_dir() and any(out.iterdir()) and not force:
        raise MnistgenError(
            f"--out {out} is not empty: pass --force to replace its frames, or choose another directory"
        )


def check_plotting() -> None:
    """Before any work: a plot needs matplotlib (an optional extra)."""
    try:
        import matplotlib  # noqa: F401  (the package only: pyplot loads when the plot is drawn)
    except ImportError:
        raise MnistgenError(PLOT_INSTALL_HINT) from None


def check_latent_scatter(latent: int, model: str) -> None:
    """Before any work: encode --plot draws latent dimensions 0 and 1, which a 1-d latent lacks."""
    if latent < SCATTER_DIMS:
        raise MnistgenError(f"--plot draws latent dimensions 0 and 1, but model {model} has a 1-d latent: drop --plot")


def _pyplot():
    try:
        import logging

        import matplotlib

        logging.getLogger("matplotlib").setLevel(logging.WARNING)  # Paddle sets the root logger to INFO
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MnistgenError(PLOT_INSTALL_HINT) from None
    return plt


def write_latent_scatter(path: Path, means: np.ndarray, stds: np.ndarray, labels, title: str) -> None:
    """The tutorial's two scatter plots side by side: encoder means and standard deviations
    (dimensions 0 and 1, each axis named as its CSV column: mean_0, std_1), coloured by digit, with
    the prior's unit circle on the means."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), dpi=PLOT_DPI)
    for ax, values, name, column in ((axes[0], means, "mean", "mean"), (axes[1], stds, "standard deviation", "std")):
        if labels is None:
            ax.scatter(values[:, 0], values[:, 1], s=PLOT_POINT_SIZE, c="tab:blue")
        else:
            for digit in np.unique(labels):
                pick = labels == digit
                ax.scatter(
                    values[pick, 0],
                    values[pick, 1],
                    s=PLOT_POINT_SIZE,
                    c=DIGIT_COLORS[int(digit) % len(DIGIT_COLORS)],
                    label=str(digit),
                )
        ax.set_xlabel(f"{column}_0")
        ax.set_ylabel(f"{column}_1")
        ax.set_title(f"{title}: {name}")
    circle = np.linspace(0, 2 * np.pi, 200)
    axes[0].plot(np.cos(circle), np.sin(circle), "k--", linewidth=1, label="N(0, I): 1 sigma")
    axes[0].set_aspect("equal", adjustable="datalim")
    axes[0].legend(loc="upper right", fontsize=7, markerscale=2, ncol=2)
    fig.tight_layout()
    try:
        with atomic.atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def source_text(name: str) -> str:
    """A source's name as valid UTF-8 text for the CSV and HDF5 columns. A file name that is not
    UTF-8 reaches Python with its stray bytes as surrogate escapes; they are written as \\xNN, the
    way Python shows undecodable bytes, so the file stays valid UTF-8 and the bytes can be read back
    from the escapes. Every other name is written unchanged."""
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate no file name decodes to: show it escaped
        return name.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def write_latents(
    path: Path, names: list[str], labels, means: np.ndarray, stds: np.ndarray, attrs: Optional[dict] = None
) -> None:
    """Latents to .npy (N, 2d: means then stds), .csv or .h5, chosen by suffix; an .h5 also records
    `attrs` (the model and its sha256: which encoder made them)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, np.concatenate([means, stds], axis=1).astype(np.float32))
    elif suffix in (".h5", ".hdf5"):
        import h5py

        buffer = io.BytesIO()  # built in memory (smaller than the images encoded): HDF5 never meets a full disk
        with h5py.File(buffer, "w") as f:
            f["means"], f["stds"] = means, stds
            f["labels"] = np.asarray(labels if labels is not None else np.full(len(means), -1), dtype=np.int64)
            f["sources"] = np.array([source_text(n) for n in names], dtype=h5py.string_dtype())
            write_hdf5_attrs(f, attrs or {})
        atomic.write_bytes(path, buffer.getbuffer())
    else:
        atomic.write_text(path, latents_csv(names, labels, means, stds))


def latents_csv(names: list[str], labels, means: np.ndarray, stds: np.ndarray) -> str:
    """One row per image: source, label (empty when unlabelled), the means, the standard deviations.
    Each value is written as the shortest text that reads back as the same float32, so the CSV
    holds what the .npy and .h5 hold, not a rounding of it."""
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    means, stds = np.asarray(means, np.float32), np.asarray(stds, np.float32)
    d = means.shape[1]
    writer.writerow(["source", "label", *[f"mean_{i}" for i in range(d)], *[f"std_{i}" for i in range(d)]])
    for i, name in enumerate(names):
        label = "" if labels is None else int(labels[i])
        writer.writerow([source_text(name), label, *map(str, means[i]), *map(str, stds[i])])
    return buffer.getvalue()
