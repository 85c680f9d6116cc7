"""How common each image is in a VAE's latent space: per-dimension histograms of the latent means.

DB-VAE (Amini, Soleimany, Schwarting, Bhatia & Rus, "Uncovering and Mitigating Algorithmic Bias
through Learned Latent Structure", AIES 2019) estimates the training distribution in the latent space
of a VAE with one histogram per latent dimension, treating the dimensions as independent, and draws
training images with probability inversely proportional to that estimate, so images with rare latent
features (lighting, skin tone, pose, ...) are seen more often.

Notation: ``mu`` is (N, D), the posterior means of N images. For dimension d the range
``[min_i mu_id, max_i mu_id]`` is cut into ``bins`` equal bins (a dimension with no spread puts every
row in bin 0) and ``p_d(b) = n_d(b) / N`` is the share of rows in bin b (bin *probabilities*, not a
density per unit width, so ``smoothing`` and ``alpha`` mean the same at any latent scale). ``p_d(i)``
is the probability of row i's bin in dimension d.

:func:`latent_density` (how typical a row is; the minority = the lowest values) returns the natural
**log** density, ``log q(i)``, with the smoothed histogram ``p̃_d = (p_d + smoothing) / (1 + bins ·
smoothing)`` (smoothed, then renormalised to sum to 1 over the bins):

* ``combine="product"`` (DB-VAE): ``log q(i) = Σ_d log p̃_d(i)``, the joint under independent
  dimensions, summed in log space (a product of D small numbers underflows);
* ``combine="max"`` (the MIT 6.S191 course implementation of DB-VAE, which takes the maximum over the
  dimensions of the inverse densities): ``log q(i) = min_d log p̃_d(i)``: a row is as rare as its
  rarest dimension. The product counts every dimension (a row slightly unusual in many dimensions can
  be rarer than one very unusual in one); "max" looks only at the single most unusual dimension.

:func:`debias_weights` returns the sampling probabilities (float64, sum 1):

* ``combine="product"`` (the paper's Algorithm 1): ``w(i) ∝ Π_d 1 / (p_d(i) + α)``, computed as
  ``softmax_i(−Σ_d log(p_d(i) + α))``;
* ``combine="max"`` (MIT 6.S191): per dimension ``u_d(i) = (1 / (p_d(i) + α)) / Σ_j 1 / (p_d(j) + α)``,
  then ``w(i) ∝ max_d u_d(i)``. (The course code adds α to a per-unit-width density and renormalises;
  with bin probabilities its α is ours times the bin width, the renormalisation cancels.)

``α >= 0`` is the de-biasing knob: α = 0 samples purely by inverse density, α -> ∞ gives uniform
weights (every factor tends to 1/α). With ``smoothing = α`` the weights rank rows exactly as
``latent_density`` does for "product" (most weight = lowest density); for "max" the per-dimension
normalisation of ``u_d`` can reorder rows whose rarest dimensions differ.
"""
from __future__ import annotations

import numpy as np
import torch

COMBINES = ("product", "max")


def _as_array(mu) -> np.ndarray:
    if isinstance(mu, torch.Tensor):
        mu = mu.detach().cpu().double().numpy()
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim == 1:
        mu = mu[:, None]
    if mu.ndim != 2:
        raise ValueError(f"expected latent means shaped (N, D), got {mu.shape}")
    return mu


def _check(bins: int, combine: str) -> None:
    if int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    if combine not in COMBINES:
        raise ValueError(f"combine must be one of {', '.join(COMBINES)}, got {combine!r}")


def bin_index(mu, bins: int = 10) -> np.ndarray:
    """(N, D) bin of every row in every dimension: ``bins`` equal bins over each dimension's min..max."""
    mu = _as_array(mu)
    low, high = mu.min(axis=0), mu.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    index = np.floor((mu - low) / span * bins).astype(np.int64)
    return np.clip(index, 0, bins - 1)


def bin_probabilities(mu, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """``(p, index)``: p (N, D) = the share of rows in row i's bin of dimension d; index =
    :func:`bin_index`."""
    index = bin_index(mu, bins)
    n, dims = index.shape
    if n == 0:
        return np.zeros((0, dims)), index
    flat = index + np.arange(dims)[None, :] * bins
    counts = np.bincount(flat.ravel(), minlength=dims * bins)
    return counts[flat] / n, index


def latent_density(mu, bins: int = 10, smoothing: float = 0.001, combine: str = "product") -> np.ndarray:
    """Natural log of each row's latent density (N,), from smoothed per-dimension histograms.

    ``product``: Σ_d log p̃_d(i) (DB-VAE); ``max``: min_d log p̃_d(i) (the rarest dimension decides,
    as in the MIT 6.S191 implementation). See the module docstring.
    """
    _check(bins, combine)
    if smoothing < 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing!r}")
    p, _ = bin_probabilities(mu, bins)
    smoothed = (p + smoothing) / (1.0 + bins * smoothing)
    with np.errstate(divide="ignore"):
        logs = np.log(smoothed)
    if combine == "product":
        return logs.sum(axis=1)
    return logs.min(axis=1) if logs.shape[1] else np.zeros(len(logs))


def debias_weights(mu, bins: int = 10, alpha: float = 0.001, combine: str = "product") -> np.ndarray:
    """Sampling probabilities (N,) ∝ the inverse latent density, summing to 1 (DB-VAE's re-sampling).

    ``product``: ∝ Π_d 1/(p_d(i) + α) (Amini et al. 2019, Algorithm 1); ``max``: ∝ max_d of the
    per-dimension normalised 1/(p_d(i) + α) (MIT 6.S191). See the module docstring.
    """
    _check(bins, combine)
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha!r}")
    p, _ = bin_probabilities(mu, bins)
    n = len(p)
    if n == 0:
        return np.zeros(0)
    if combine == "product":
        log_w = -np.log(p + alpha).sum(axis=1)
        w = np.exp(log_w - log_w.max())
    else:
        inverse = 1.0 / (p + alpha)
        u = inverse / inverse.sum(axis=0, keepdims=True)
        w = u.max(axis=1) if u.shape[1] else np.ones(n)
    return w / w.sum()


def find_minority(mu, fraction: float = 0.05, bins: int = 10, smoothing: float = 0.001,
                  combine: str = "product") -> np.ndarray:
    """Row indices of the rarest ``fraction`` of rows (lowest :func:`latent_density`), rarest first.

    Takes ``max(1, round(fraction · N))`` rows (none when N = 0); ties keep row order.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    density = latent_density(mu, bins, smoothing, combine)
    n = len(density)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k = max(1, int(round(fraction * n)))
    return np.argsort(density, kind="stable")[:k].astype(np.int64)


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size 1 / Σ w² of normalised weights (N for uniform, 1 for a single row)."""
    weights = np.asarray(weights, dtype=np.float64)
    return float(1.0 / np.square(weights).sum()) if len(weights) else 0.0
