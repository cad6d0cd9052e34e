"""Write the first N MNIST training images (or N after the first SKIP) as an ImageFolder: OUT/<digit>/<index>.png.

A starting point for `mnistgen train --data OUT` on your own labelled images: replace or add
class folders, then train on them.

Example: python examples/make_imagefolder.py --data ../shared/data/mnist --count 1000 --out digits/

With --skip, the next images instead: `--skip 1000 --count 10000` are 10,000 labelled images the
first 1,000 do not hold, to pass to `evaluate --images` as what a perfect generator would give.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mnistgen import export, sources
from mnistgen.errors import MnistgenError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="directory of the MNIST IDX files (.gz or not)")
    parser.add_argument("--count", type=int, default=1000, help="how many training images, from the first")
    parser.add_argument("--out", type=Path, required=True, help="the ImageFolder to write (OUT/<digit>/<index>.png)")
    parser.add_argument("--skip", type=int, default=0, help="start after this many training images")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    if args.skip < 0:
        parser.error("--skip must be at least 0")
    try:
        train = sources.read_idx_dir(args.data).train.subset(slice(args.skip, args.skip + args.count))
        if not len(train):
            raise MnistgenError(f"--skip {args.skip} leaves no training images in {args.data}: skip fewer")
        for index, (image, label) in enumerate(zip(train.images, train.labels), start=args.skip):
            folder = args.out / str(int(label))
            folder.mkdir(parents=True, exist_ok=True)
            export.write_png(folder / f"{index}.png", image)
    except MnistgenError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(train)} images to {args.out}/<digit>/<index>.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
