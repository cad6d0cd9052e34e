"""Training's evaluations through Paddle Inference: the same figures as eager Paddle, faster."""

from __future__ import annotations

import numpy as np
import pytest

from mnistgen import checkpoint, decoders, explore
from mnistgen.config import ModelConfig


@pytest.mark.parametrize("kind,likelihood", [("cvae", "gaussian"), ("vae", "bernoulli")])
def test_predictor_test_loss_equals_eager(dataset, kind, likelihood):
    from mnistgen import model

    net = model.build(ModelConfig(kind=kind, latent=3, channels=8, likelihood=likelihood))
    inference = decoders.InferenceVAE(net)
    eager = model.test_loss(net, dataset.test, seed=4)
    fast = model.test_loss(net, dataset.test, seed=4, inference=inference)
    assert fast.keys() == eager.keys()
    for key in eager:
        assert fast[key] == pytest.approx(eager[key], rel=1e-5, abs=1e-4), key


def test_predictor_encodes_and_decodes_as_eager(tiny_cvae, dataset):
    weights = checkpoint.inspect(str(tiny_cvae))
    net = decoders.load_model(weights)
    inference = decoders.InferenceVAE(net)
    part = dataset.train.subset(slice(0, 300))
    means, stds = inference.encode(part.images, part.labels)
    eager_means, eager_stds = explore.encode(net, part.images, part.labels)
    np.testing.assert_allclose(means, eager_means, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stds, eager_stds, rtol=1e-4, atol=1e-5)
    onehot = np.eye(10, dtype=np.float32)[part.labels]
    fast = inference.decode(eager_means, onehot).astype(int)
    assert np.abs(fast - decoders.decode(net, eager_means, onehot).astype(int)).max() <= 1  # rounding at .5


def test_exports_are_removed_and_weights_change_the_key(dataset):
    from mnistgen import model, predictor

    net = model.build(ModelConfig(kind="cvae", channels=4))
    inference = decoders.InferenceVAE(net)
    model.test_loss(net, dataset.test, inference=inference)
    key = inference.sha256[: predictor.SHA_PREFIX]  # this net's: the cache is shared, other runs' may be there
    assert not [row for row in predictor.list_exports() if row["name"].startswith("training-") and key in row["name"]]
    net.decoder.out.bias.set_value(net.decoder.out.bias.numpy() + 1)
    assert decoders.weights_sha256(net) != inference.sha256
