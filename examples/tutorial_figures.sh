#!/usr/bin/env bash
# Every figure of the VAE/CVAE tutorial mnistgen grew from, on the shipped weights.
#
#   examples/tutorial_figures.sh MNIST_DIR [OUT_DIR]
#
# MNIST_DIR holds the four MNIST IDX files (the one- and two-image experiments train the tutorial's
# 2-D VAE, recipe vae-2d, on training images 5 and 25; the scatter plots encode the first 1,000
# training images). OUT_DIR defaults to docs/figures (run from the repository's root), whose
# figures the README shows; the figures there are replaced. Needs the plot extra for the scatter
# plots: pip install -e ".[cpu,plot]". About a minute and a half on two cores (88 s).
set -euo pipefail
usage="usage: examples/tutorial_figures.sh MNIST_DIR [OUT_DIR]"
case "${1:-}" in
  -h | --help)
    sed -n '2,10s/^# \{0,1\}//p' "$0"
    exit 0
    ;;
  "" | -*)
    echo "$usage" >&2
    exit 2
    ;;
esac
if (($# > 2)); then
  echo "$usage" >&2
  exit 2
fi
data=$1
out=${2:-docs/figures}
shopt -s nullglob
found=("$data"/train-images-idx3-ubyte*)
shopt -u nullglob
if ((${#found[@]} == 0)); then
  echo "Error: $data holds no train-images-idx3-ubyte[.gz]: pass the folder of the four MNIST IDX files" >&2
  exit 1
fi
train_images=${found[0]}
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
mkdir -p "$out"
q=(--quiet --force)  # --force: replace the figures a previous run left in OUT_DIR

# 1. random samples from the VAE prior: 10 rows of 20
mnistgen generate --model vae-2d --count 200 --format grid --out "$out/vae_samples.png" --seed 1 "${q[@]}" >/dev/null
# 2. encoder means and standard deviations of 1,000 training images, coloured by digit (VAE, CVAE)
mnistgen encode "$train_images" --limit 1000 --model vae-2d --plot "$out/vae_latent.png" "${q[@]}" >/dev/null
mnistgen encode "$train_images" --limit 1000 --model cvae-2d --plot "$out/cvae_latent.png" "${q[@]}" >/dev/null
# 3. the 20x20 manifold: a grid over the range of the VAE's encoder means
mnistgen interpolate --model vae-2d --grid 20 --scale 1 --out "$out/vae_manifold.png" "${q[@]}" >/dev/null
# 4. prior vs posterior: decoding z = mean + noise * std of ten training images (top) and the same noise alone (bottom)
python - "$train_images" "$out/prior_vs_posterior.png" <<'PY'
import sys
import numpy as np
import mnistgen
from mnistgen import data, export, sources
images = sources.read_idx(__import__("pathlib").Path(sys.argv[1]), data.IDX_IMAGES_MAGIC)[:10]
model = mnistgen.load("vae-2d")
means, stds = model.encode(images)
noise = np.random.default_rng(0).standard_normal(means.shape).astype(np.float32)
rows = np.stack([model.decode(means + noise * stds), model.decode(noise)])
export.write_png(__import__("pathlib").Path(sys.argv[2]), export.upscale(export.tile(rows), 2))
PY
# 5. one image, then two images: the tutorial's 2-D VAE (recipe vae-2d) trained on training image 5
# (and 25) alone, as the README's `train` example, then a grid decoded far around their means
for name in 5 5,25; do
  run="$runs/images-${name/,/-}"
  count=$(awk -F, '{print NF}' <<<"$name")
  mnistgen train --model vae --recipe vae-2d --data "$data" --indices "$name" --batch-size "$count" --epochs 100 \
    --eval-every 100 --out "$run" --quiet >/dev/null
  bounds=$(mnistgen encode "$train_images" --limit 26 --model "$run" | python -c '
import csv, sys
rows = [r for i, r in enumerate(csv.DictReader(sys.stdin)) if str(i) in sys.argv[1].split(",")]
xs = [float(r["mean_0"]) for r in rows]; ys = [float(r["mean_1"]) for r in rows]
span = 1000.0  # as far out as the tutorial looks
print(f"{min(xs) - span},{max(xs) + span},{min(ys) - span},{max(ys) + span}")' "$name")
  mnistgen interpolate --model "$run" --grid 20 --bounds "$bounds" --scale 1 --out "$out/one_vs_two_${name/,/_}.png" "${q[@]}" >/dev/null
done
# 6. CVAE: 20 samples of every digit, one row each
mnistgen generate --model cvae-2d --digit all --count 20 --format grid --out "$out/cvae_samples.png" --seed 1 "${q[@]}" >/dev/null
# 7. CVAE 20x20 grids over the latent range for digits 2, 5 and 0
for d in 2 5 0; do
  mnistgen interpolate --model cvae-2d --grid 20 --digit "$d" --scale 1 --out "$out/cvae_manifold_$d.png" "${q[@]}" >/dev/null
done
# and a latent walk through the ten digits
mnistgen interpolate --model cvae-2d --to gif --steps 8 --scale 3 --out "$out/cvae_walk.gif" "${q[@]}" >/dev/null
ls -la "$out"
