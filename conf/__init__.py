"""Hydra configuration groups of fairrun (installed as the package ``fairrun.conf``)."""
