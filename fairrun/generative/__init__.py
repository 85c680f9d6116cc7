"""Generative models used by the generative de-biasing methods."""
