"""Use mnistgen from Python: generate labelled digits as arrays, walk the latent space, encode.

python examples/python_api.py
"""

import numpy as np

import mnistgen

model = mnistgen.load("cvae-2d")  # a shipped name, a .safetensors path, or a run directory
print(model)

# 100 synthetic 3s and 100 synthetic 7s, in label order as generate writes them:
# uint8 (200, 28, 28), labels int64 (200,), latents float32 (200, 2)
images, labels, z = model.generate(digit=[7, 3], count=100, seed=0, temperature=0.8)
print(images.shape, images.dtype, np.bincount(labels))

# decoding the 7s' latents again gives the same pixels (those of
# `mnistgen generate --model cvae-2d --digit 7 --count 100 --seed 0 --temperature 0.8`)
sevens = labels == 7
again = model.decode(z[sevens], labels=7)
assert np.array_equal(again, images[sevens])

# a label morph from 3 to 8 at a fixed z, and the encoder's view of the samples
frames = model.interpolate(digits=[3, 8], steps=8)
means, stds = model.encode(images, labels)
print("frames", frames.shape, "mean latent of the 7s", means[sevens].mean(0).round(2))

# every model mnistgen can find (shipped, and in $MNISTGEN_WEIGHTS)
for row in mnistgen.models():
    print(row["name"], row.get("kind"), row.get("test_loss"))
