"""Hydra configuration groups of fairrun (installed as the package ``fairrun.conf``).

The defaults live in the schemas (dataclasses) that :func:`fairrun.config.store.register_configs` puts
into Hydra's ConfigStore when this package is imported; the YAML files here are presets that differ from
them, the commands' top-level configs, sweep presets and launchers.
"""
from fairrun.config.store import register_configs

register_configs()
