"""The command layer: what the ``fairrun`` console script (:mod:`fairrun.cli`) does before and around the
Hydra applications of its subcommands."""
