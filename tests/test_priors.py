"""Fitting priors to an aggregate posterior (priors.py): pure numpy, no model needed."""

from __future__ import annotations

import json

import numpy as np

from mnistgen import checkpoint, priors


def two_blobs(n: int = 600, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal([-4.0, 0.0], 0.5, (n // 3, 2))
    b = rng.normal([4.0, 1.0], [1.0, 0.3], (n - n // 3, 2))
    return np.concatenate([a, b])


def test_em_finds_two_separated_components_with_their_weights_and_spreads():
    weights, means, chols = priors.fit_mixture(two_blobs(), 2, seed=0)
    order = np.argsort(means[:, 0])
    assert np.allclose(weights[order], [1 / 3, 2 / 3], atol=0.01)
    assert np.allclose(means[order], [[-4.0, 0.0], [4.0, 1.0]], atol=0.15)
    covs = chols @ chols.transpose(0, 2, 1)
    assert np.allclose(np.sqrt(np.diagonal(covs[order], axis1=1, axis2=2)), [[0.5, 0.5], [1.0, 0.3]], atol=0.1)


def test_em_is_deterministic_for_a_seed():
    first, second = priors.fit_mixture(two_blobs(), 3, seed=7), priors.fit_mixture(two_blobs(), 3, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_components_grow_with_the_images_and_are_capped():
    assert priors.components_for(10) == 1
    assert priors.components_for(2 * priors.IMAGES_PER_COMPONENT) == 2
    assert priors.components_for(10**6) == priors.MAX_COMPONENTS


def test_few_images_get_more_posterior_draws_each():
    assert priors.draws_for(10**5) == 2
    assert priors.draws_for(100) * 100 >= priors.MIN_POINTS
    assert priors.draws_for(1) == priors.MAX_DRAWS


def test_fewer_points_than_components_gives_one_per_point():
    weights, means, _ = priors.fit_mixture(np.array([[0.0, 0.0], [1.0, 1.0]]), 5)
    assert len(weights) == 2 and np.isclose(weights.sum(), 1.0)


def test_latent_stats_hold_a_gaussian_and_a_mixture_per_label():
    rng = np.random.default_rng(1)
    means = rng.normal(size=(300, 4)).astype(np.float32)
    stds = np.full((300, 4), 0.1, np.float32)
    labels = np.repeat([0, 1, 2], 100)
    stats = priors.latent_stats(means, stds, labels)
    assert set(stats["fitted"]) == set(stats["mixture"]) == {"all", "0", "1", "2"}
    entry = stats["mixture"]["1"]
    k = priors.components_for(100)
    assert np.shape(entry["means"]) == (k, 4) and np.shape(entry["cholesky"]) == (k, 4, 4)
    assert entry["weights"] == sorted(entry["weights"], reverse=True)
    assert json.loads(json.dumps(stats)) == stats  # plain JSON types only


def test_cards_keep_number_lists_on_one_line_and_read_back_the_same(tmp_path):
    card = {
        "format": checkpoint.FORMAT,
        "format_version": 1,
        "name": "x",
        "m": [[1.5, -2e-05], [3, 4]],
        "s": ["a"],
        "command": "mnistgen interpolate --points [0.5,  1]",  # looks like a list, is text: kept as it is
    }
    checkpoint.write_card(tmp_path / "x.json", card)
    text = (tmp_path / "x.json").read_text()
    assert "[1.5, -2e-05]" in text and json.loads(text) == card
    assert checkpoint.read_card(tmp_path / "x.json") == card
