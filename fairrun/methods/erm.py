"""Empirical risk minimisation: the plain, unmitigated baseline."""
from dataclasses import dataclass

from fairrun.methods.base import Method
from fairrun.methods.registry import register


@dataclass
class ERMConfig:
    """``method=erm`` has no keys besides its name."""

    name: str = "erm"


@register
class ERM(Method):
    """Minimise the mean cross-entropy over the training set (Vapnik, 1992). No mitigation."""

    name = "erm"
    Config = ERMConfig
