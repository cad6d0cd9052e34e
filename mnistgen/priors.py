"""Priors fitted to an encoder's aggregate posterior, for the model card: one Gaussian per label
("fitted") and a Gaussian mixture per label ("mixture", fitted by EM). Pure numpy.

Why: a VAE's decoder is trained on latents drawn from q(z|x), not from N(0, I); the aggregate
posterior (1/N) sum_i q(z|x_i) is where its images are good. Sampling from a density fitted to it
afterwards is "ex-post density estimation" (Ghosh et al., From Variational to Deterministic
Autoencoders, ICLR 2020); a mixture follows the aggregate posterior's several modes per digit (the
idea of pythae's GaussianMixtureSampler, Chadebec et al., NeurIPS 2022), which one Gaussian
smears into one blob with holes.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

MAX_COMPONENTS = 10  # mixture components per label, at most (also the most a card may hold)
IMAGES_PER_COMPONENT = 10  # a component per this many images of the label (chosen with evaluate --augment)
MIN_POINTS = 2_000  # posterior samples a label's mixture is fitted to, at least: few images get more draws each
MAX_DRAWS = 64  # posterior samples per image, at most
EM_ITERATIONS = 200
EM_TOLERANCE = 1e-4  # stop when the mean log-likelihood improves by less than this
COVARIANCE_FLOOR = 1e-4  # added to every component's covariance diagonal: keeps it invertible
STREAM_MIXTURE = 31  # the posterior draws and the k-means++ seeding
ROUND = 5  # decimals kept in the card


def aggregate_gaussian(means: np.ndarray, variances: np.ndarray) -> dict:
    """The Gaussian closest to the aggregate posterior (1/N) sum_i N(mean_i, diag(var_i)): mean of
    the means, covariance of the means plus the mean variance; stored as its Cholesky factor."""
    d = means.shape[1]
    cov = (np.cov(means, rowvar=False).reshape(d, d) if len(means) > 1 else np.zeros((d, d))) + np.diag(
        variances.mean(axis=0)
    )
    chol = np.linalg.cholesky(cov + 1e-6 * np.eye(d))
    return {"mean": means.mean(axis=0).round(ROUND).tolist(), "cholesky": chol.round(ROUND).tolist()}


def components_for(images: int) -> int:
    """How many mixture components `images` encoded images of one label support."""
    return int(min(MAX_COMPONENTS, max(1, images // IMAGES_PER_COMPONENT)))


def _log_densities(points: np.ndarray, weights: np.ndarray, means: np.ndarray, chols: np.ndarray) -> np.ndarray:
    """log(w_k N(x_n; mu_k, L_k L_k^T)) for every point and component: (N, K)."""
    n, d = points.shape
    out = np.empty((n, len(weights)))
    for k in range(len(weights)):
        y = np.linalg.solve(chols[k], (points - means[k]).T)  # (d, N): L^-1 (x - mu)
        log_det = 2 * np.log(np.diag(chols[k])).sum()
        out[:, k] = np.log(weights[k]) - 0.5 * (d * np.log(2 * np.pi) + log_det + (y**2).sum(0))
    return out


def _kmeans_plus_plus(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii, SODA 2007): hard initial responsibilities (N, k)."""
    centres = [points[rng.integers(len(points))]]
    nearest = ((points - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        centres.append(points[rng.choice(len(points), p=nearest / nearest.sum())])
        nearest = np.minimum(nearest, ((points - centres[-1]) ** 2).sum(1))
    distances = ((points[:, None, :] - np.asarray(centres)[None]) ** 2).sum(2)  # (N, k)
    return np.eye(k)[distances.argmin(1)]


def fit_mixture(points: np.ndarray, components: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A full-covariance Gaussian mixture fitted to `points` (N, d) by EM (Dempster et al., 1977):
    (weights (K,), means (K, d), Cholesky factors (K, d, d)). Deterministic for a seed."""
    points = points.astype(np.float64)
    n, d = points.shape
    k = max(1, min(components, n))
    resp = _kmeans_plus_plus(points, k, np.random.default_rng([seed, STREAM_MIXTURE]))
    previous = -np.inf
    for _ in range(EM_ITERATIONS):
        counts = resp.sum(0) + 1e-10  # (K,)
        means = resp.T @ points / counts[:, None]  # (K, d)
        chols = np.empty((k, d, d))
        for j in range(k):
            centred = points - means[j]
            cov = (resp[:, j, None] * centred).T @ centred / counts[j]
            chols[j] = np.linalg.cholesky(cov + COVARIANCE_FLOOR * np.eye(d))
        weights = counts / counts.sum()
        log_p = _log_densities(points, weights, means, chols)  # (N, K)
        top = log_p.max(1, keepdims=True)
        log_total = top[:, 0] + np.log(np.exp(log_p - top).sum(1))
        resp = np.exp(log_p - log_total[:, None])
        if log_total.mean() - previous < EM_TOLERANCE:
            break
        previous = log_total.mean()
    return weights, means, chols


def draws_for(images: int) -> int:
    """Posterior samples per image: at least two, and enough for MIN_POINTS in all (at most MAX_DRAWS)."""
    return int(min(MAX_DRAWS, max(2, -(-MIN_POINTS // max(1, images)))))


def aggregate_mixture(means: np.ndarray, stds: np.ndarray, seed: int = 0) -> dict:
    """A Gaussian mixture fitted to draws_for(N) samples of each of the N images' posteriors
    N(mean, std^2), with components_for(N) components; the card's form, components sorted by weight."""
    rng = np.random.default_rng([seed, STREAM_MIXTURE, len(means)])
    draws = np.concatenate([means + stds * rng.standard_normal(means.shape) for _ in range(draws_for(len(means)))])
    weights, centres, chols = fit_mixture(draws, components_for(len(means)), seed)
    order = np.argsort(-weights, kind="stable")
    return {
        "weights": (weights[order] / weights.sum()).round(ROUND + 1).tolist(),
        "means": centres[order].round(ROUND).tolist(),
        "cholesky": chols[order].round(ROUND).tolist(),
    }


def latent_stats(
    means: np.ndarray, stds: np.ndarray, labels: Optional[np.ndarray], seed: int = 0, mixture: bool = True
) -> dict:
    """The card's "latent_stats": the encoder means' range and spread, per-label centroids, and the
    fitted priors (one Gaussian and, with `mixture`, a mixture: per label and for all labels
    together). The mixture's EM is most of the cost (about a second for 800 images)."""
    means, stds = np.asarray(means, np.float64), np.asarray(stds, np.float64)  # rounds to clean decimals
    classes = np.unique(labels) if labels is not None else []  # None: unlabelled images, "all" only

    def per_label(fit) -> dict:  # fit(means, stds) for all images together ("all") and for each label
        return {"all": fit(means, stds), **{str(c): fit(means[labels == c], stds[labels == c]) for c in classes}}

    return {
        "images": len(means),
        "mean_min": means.min(axis=0).round(ROUND).tolist(),
        "mean_max": means.max(axis=0).round(ROUND).tolist(),
        "mean_p01": np.percentile(means, 1, axis=0).round(ROUND).tolist(),
        "mean_p99": np.percentile(means, 99, axis=0).round(ROUND).tolist(),
        "mean_std": means.std(axis=0).round(ROUND).tolist(),
        "centroids": {str(c): means[labels == c].mean(axis=0).round(ROUND).tolist() for c in classes},
        "fitted": per_label(lambda m, sd: aggregate_gaussian(m, sd**2)),
        **({"mixture": per_label(lambda m, sd: aggregate_mixture(m, sd, seed))} if mixture else {}),
    }
