"""Method registry: YAML name -> Method class. Adding a method = one module here + one YAML."""
from __future__ import annotations

METHODS: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator registering a :class:`~fairrun.methods.base.Method` under ``cls.name``."""
    if cls.name in METHODS:
        raise ValueError(f"method '{cls.name}' registered twice")
    METHODS[cls.name] = cls
    return cls
