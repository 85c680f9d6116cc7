"""Method registry: YAML name -> Method class, open to a user's own methods (see :mod:`fairrun.core.registry`).

Adding a built-in method = one module in this package (a :class:`~fairrun.methods.base.Method` subclass
decorated with :func:`register`) + one YAML in ``conf/method/``. A user's method is a Method subclass in the
user's own module, selected by ``_target_`` in a YAML of the user's config dir (docs/extending.md).
"""
from __future__ import annotations

from fairrun.core.registry import Registry


def _check(entry) -> str | None:
    from fairrun.methods.base import Method

    if not (isinstance(entry, type) and issubclass(entry, Method)):
        return f"{entry!r} is not a subclass of fairrun.Method"
    return None


METHODS = Registry(
    "method",
    "A method is a subclass of fairrun.Method with a class attribute name = \"mine\" and Config = a dataclass "
    "holding a field name: str = \"mine\" and the method's keys (docs/extending.md).",
    _check,
)
register = METHODS.register

# Needs a method checks only once training has started (in its ``prepare``), so that the sweep's method list
# (``+sweep=methods``) can leave the method out up front: {name: (classes of the target, protected groups)}.
# gan_debias and minority_gan label generated images with binary target and protected-attribute classifiers.
RUNTIME_NEEDS: dict[str, tuple[int, int]] = {"gan_debias": (2, 2), "minority_gan": (2, 2)}
