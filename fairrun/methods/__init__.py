"""Debiasing methods. Every module in this package is imported so its methods register themselves."""
import importlib
import pkgutil

from fairrun.methods.base import Batch, Method, Outputs
from fairrun.methods.registry import METHODS, register

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "registry"):
        importlib.import_module(f"{__name__}.{_module.name}")


def build_method(cfg, *, num_classes: int, num_groups: int) -> Method:
    """Instantiate the method named by ``cfg.name`` with its validated config."""
    return METHODS[cfg.name](cfg, num_classes=num_classes, num_groups=num_groups)


__all__ = ["Batch", "Method", "Outputs", "METHODS", "build_method", "register"]
