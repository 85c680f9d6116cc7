"""Classifiers: each is a backbone (``features``) followed by a linear ``head``.

The head's input is the model's "latent" representation, which later methods (fair feature masking,
adversarial debiasing, GAN de-biasing) read through :meth:`Classifier.features`.
"""
from fairrun.models.classifier import Classifier
from fairrun.models.registry import MODELS, ModelBuilder, build_model

__all__ = ["Classifier", "MODELS", "ModelBuilder", "build_model"]
