"""``--help`` of the Hydra subcommands without Hydra's eager list of config groups.

Hydra's ``get_help`` computes ``$APP_CONFIG_GROUPS`` and ``$HYDRA_CONFIG_GROUPS`` whether or not the help template
uses them, and each group option it lists builds a config repository that deep-copies the whole ConfigStore
(fairrun stores every schema: over 150 copies, 6-15 s per ``fairrun train --help`` on 2 cores). fairrun's templates
(``hydra.help.template`` in ``conf/*.yaml``) list their groups with ``${fairrun_config_groups:...}`` instead, so
:func:`install_lazy_help` makes Hydra substitute only what a template names; a template that names
``$APP_CONFIG_GROUPS`` (a user's own) gets Hydra's own code. ``--hydra-help``'s ``$HYDRA_CONFIG_GROUPS`` is listed
per group (:func:`hydra_config_groups`), and both helps show one set of launchers (fairrun's presets) and
fairrun's shell completion (:func:`fairrun_help_text`).
"""
from __future__ import annotations

import re
import string

from fairrun.commands.completion import PLUGIN_LAUNCHERS

# Hydra's placeholder for the app's config groups: a template naming it (a user's own) gets Hydra's own code.
EAGER = ("$APP_CONFIG_GROUPS", "${APP_CONFIG_GROUPS}")
# Hydra's flag help for -sc names Hydra's per-app scripts (fairrun-train -sc install=bash, a command that does
# not exist); fairrun's own script completes every command.
COMPLETION_FLAG_HELP = ("--shell-completion,-sc : completion of every fairrun command in bash and zsh:\n"
                        "    eval \"$(fairrun --completion bash)\" in ~/.bashrc "
                        "(zsh: --completion zsh in ~/.zshrc)\n")


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
    """The help text of ``help_cfg.template`` (``--help``, and ``--hydra-help``'s Hydra template): Hydra's own
    when it names ``$APP_CONFIG_GROUPS``, else the template with ``$FLAGS_HELP``, ``$CONFIG`` and
    ``$HYDRA_CONFIG_GROUPS`` (:func:`hydra_config_groups`) substituted; either way as
    :func:`fairrun_help_text` edits it."""
    from omegaconf import OmegaConf

    template = help_cfg.template
    if any(name in template for name in EAGER):
        return fairrun_help_text(original(hydra, help_cfg, cfg, args_parser, resolve))
    values = {"CONFIG": OmegaConf.to_yaml(cfg, resolve=resolve)}
    if "FLAGS_HELP" in template:
        values["FLAGS_HELP"] = hydra.format_args_help(args_parser)
    if "HYDRA_CONFIG_GROUPS" in template:
        values["HYDRA_CONFIG_GROUPS"] = hydra_config_groups(hydra.config_loader)
    return fairrun_help_text(string.Template(template).safe_substitute(values))


def hydra_config_groups(loader, parent: str = "hydra") -> str:
    """One line ``group: option, option, ...`` per config group under ``parent`` (``hydra/launcher``, ...),
    sorted, as Hydra's ``$HYDRA_CONFIG_GROUPS`` lists them (less its line for ``hydra`` itself); one config
    repository per group, not per option."""
    from hydra.core.object_type import ObjectType

    lines = []
    for child in sorted(loader.get_group_options(parent, ObjectType.GROUP)):
        group = f"{parent}/{child}"
        options = loader.get_group_options(group, ObjectType.CONFIG)
        if options:
            lines.append(f"{group}: {', '.join(sorted(options))}")
        below = hydra_config_groups(loader, group)
        if below:
            lines.append(below)
    return "\n".join(lines)


def fairrun_help_text(text: str) -> str:
    """``text`` with ``hydra/launcher``'s list reduced to fairrun's presets (conf/hydra/launcher/) and Hydra's
    basic launcher, the plugins' own launchers (:data:`PLUGIN_LAUNCHERS`) left out (they still work when
    named), and the ``--shell-completion`` flag's help pointing to ``fairrun --completion bash``."""
    def launchers(match: re.Match) -> str:
        names = [n.strip() for n in match.group(2).split(",")]
        return match.group(1) + ", ".join(n for n in names if n not in PLUGIN_LAUNCHERS)

    text = re.sub(r"^(hydra/launcher: )(.*)$", launchers, text, flags=re.MULTILINE)
    return re.sub(r"^--shell-completion,-sc : .*?(?=^--)", lambda _: COMPLETION_FLAG_HELP, text,
                  flags=re.MULTILINE | re.DOTALL)
