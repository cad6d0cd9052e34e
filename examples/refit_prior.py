"""Refit a model card's latent statistics and fitted priors (one Gaussian and a Gaussian mixture per
label) from its training data, with this mnistgen: for weights trained before the mixture prior.

The tensors are not touched; the card is rewritten atomically. A model trained with a held-out
share is refitted on its own training images only (the same seeded split as `train`). The shipped `cvae` card's mixture
was made with the example below (the first 10,000 training images, as `train` uses).

Example: python examples/refit_prior.py --model weights/cvae.safetensors --data ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mnistgen import checkpoint, decoders, explore, priors, sources
from mnistgen.errors import MnistgenError
from mnistgen.train import hold_out, stats_images


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(  # the whole docstring: its first line alone stops mid-sentence
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a weights file (its .json card is rewritten)")
    parser.add_argument("--data", required=True, help="the model's training data, in any form --data takes")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the mixture fit: its posterior draws and k-means++ seeding (default 0)",
    )
    args = parser.parse_args(argv)
    try:
        weights = checkpoint.inspect(args.model)
        dataset = sources.load(Path(args.data))
        training = weights.card.get("training", {})
        if "holdout" in training:  # the images train held out were never trained on: leave them out again
            dataset, _, _ = hold_out(dataset, training["seed"], chosen="indices" in training)
        part = stats_images(dataset.train)
        means, stds = explore.encode(decoders.load_model(weights), part.images, part.labels)
        card = {**weights.card, "latent_stats": priors.latent_stats(means, stds, part.labels, args.seed)}
        checkpoint.write_card(weights.path.with_suffix(checkpoint.CARD_SUFFIX), card)
    except MnistgenError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"refitted the priors of {weights.name} on {len(part)} images", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
