"""``--help`` of the Hydra subcommands without Hydra's eager list of config groups.

Hydra's ``get_help`` computes ``$APP_CONFIG_GROUPS`` and ``$HYDRA_CONFIG_GROUPS`` whether or not the help template
uses them, and each group option it lists builds a config repository that deep-copies the whole ConfigStore
(fairrun stores every schema: over 150 copies, 6-15 s per ``fairrun train --help`` on 2 cores). fairrun's templates
(``hydra.help.template`` in ``conf/*.yaml``) list their groups with ``${fairrun_config_groups:...}`` instead, so
:func:`install_lazy_help` makes Hydra substitute only what a template names; a template that names the two
placeholders (a user's own) gets Hydra's own code.
"""
from __future__ import annotations

import string

EAGER = ("$APP_CONFIG_GROUPS", "${APP_CONFIG_GROUPS}", "$HYDRA_CONFIG_GROUPS", "${HYDRA_CONFIG_GROUPS}")


def install_lazy_help() -> None:
    """Replace ``hydra._internal.hydra.Hydra.get_help`` by :func:`lazy_get_help` (once; nothing if Hydra's
    internals moved, which leaves Hydra's slower help)."""
    try:
        from hydra._internal.hydra import Hydra
    except ImportError:
        return
    original = getattr(Hydra, "get_help", None)
    if original is None or getattr(original, "fairrun_lazy", False):
        return

    def get_help(self, help_cfg, cfg, args_parser, resolve):
        return lazy_get_help(self, original, help_cfg, cfg, args_parser, resolve)

    get_help.fairrun_lazy = True
    Hydra.get_help = get_help


def lazy_get_help(hydra, original, help_cfg, cfg, args_parser, resolve: bool) -> str:
    """The help text of ``help_cfg.template``: Hydra's own when it names the config-group placeholders, else the
    template with ``$FLAGS_HELP`` and ``$CONFIG`` substituted (what Hydra would have printed)."""
    from omegaconf import OmegaConf

    template = help_cfg.template
    if any(name in template for name in EAGER):
        return original(hydra, help_cfg, cfg, args_parser, resolve)
    values = {"CONFIG": OmegaConf.to_yaml(cfg, resolve=resolve)}
    if "FLAGS_HELP" in template:
        values["FLAGS_HELP"] = hydra.format_args_help(args_parser)
    return string.Template(template).safe_substitute(values)
