"""Latent-space de-biasing geometry (Ramaswamy, Kim & Russakovsky, "Fair Attribute Classification through
Latent Space De-biasing", CVPR 2021): hyperplanes for the target and protected attributes in a GAN's latent
space, and the complementary latent that keeps the target score and flips the protected one."""
from __future__ import annotations

import numpy as np
from sklearn.svm import LinearSVC

from fairrun.core.errors import FairrunError


def fit_hyperplane(z: np.ndarray, labels: np.ndarray, C: float = 1.0, seed: int = 0,
                   max_iter: int = 10_000) -> tuple[np.ndarray, float, float]:
    """A linear SVM (scikit-learn's LinearSVC) separating ``labels`` (0/1) in latent space.

    Returns ``(w, b, accuracy)`` with the hyperplane normalised to a unit normal, ``‖w‖ = 1`` (b divided
    by the same norm), so ``wᵀz + b`` is the signed distance of z to the plane, as the paper uses it;
    ``accuracy`` is the SVM's accuracy on the latents it was fitted on.
    """
    labels = np.asarray(labels).astype(int)
    present = np.unique(labels)
    if len(present) < 2:
        raise FairrunError(f"Cannot fit a latent hyperplane: every one of the {len(labels)} generated images got "
                           f"the hallucinated label {present.tolist()}. The baseline classifier sees a single "
                           f"class in the generator's images; use more latents (method.svm_samples), a better "
                           f"generator, or check the baseline classifiers.")
    svm = LinearSVC(C=C, random_state=seed, max_iter=max_iter, dual="auto")
    svm.fit(z, labels)
    w, b = svm.coef_[0].astype(np.float64), float(svm.intercept_[0])
    norm = float(np.linalg.norm(w))
    accuracy = float((svm.predict(z) == labels).mean())
    return w / norm, b / norm, accuracy


def complementary_latents(z: np.ndarray, w_a: np.ndarray, b_a: float, w_g: np.ndarray, b_g: float) -> np.ndarray:
    """z′ = z − 2 (w_gᵀz + b_g) / (1 − (w_gᵀw_a)²) · (w_g − (w_gᵀw_a) w_a)  (Ramaswamy et al. 2021, eq. 3).

    With unit normals w_a (target) and w_g (protected attribute), z′ keeps the target score,
    w_aᵀz′ + b_a = w_aᵀz + b_a, and mirrors the protected score, w_gᵀz′ + b_g = −(w_gᵀz + b_g): the
    displacement is along w_g's component orthogonal to w_a. Needs |w_gᵀw_a| < 1 (the planes not parallel).
    """
    z = np.asarray(z, dtype=np.float64)
    cos = float(w_g @ w_a)
    if abs(cos) >= 1 - 1e-6:
        raise FairrunError("The target and protected hyperplanes in latent space are parallel (|cos| = "
                           f"{abs(cos):.6f}), so no latent can keep the target and flip the protected "
                           "attribute. The baseline classifiers probably predict the same thing.")
    direction = w_g - cos * w_a
    scores = z @ w_g + b_g
    return z - (2 * scores / (1 - cos ** 2))[:, None] * direction[None, :]
