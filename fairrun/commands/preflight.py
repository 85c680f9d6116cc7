"""Before a subcommand's Hydra app starts: an override of a key that does not exist becomes one paragraph
that names the key, the override and the keys that do exist (Hydra's own report is a multi-line traceback
hint such as ``Could not override 'method.gama'. ... Key 'gama' is not in struct``).

The check composes the config once with Hydra's compose API (about 0.1 s), honouring ``--config-dir``, so
a key misspelled in a user's own method (``--config-dir myconf method=focal method.gama=1``) is reported the
same way as one of a built-in section. Anything else is left to Hydra and the app.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from fairrun.core.errors import paragraph

# Hydra's command-line flags that take a value (``--cfg job``, ``-cd DIR``, ...)
FLAGS_WITH_VALUE = {"-cd", "--config-dir", "-cp", "--config-path", "-cn", "--config-name", "-c", "--cfg",
                    "-p", "--package", "--experimental-rerun", "--info", "-i"}


def split_argv(args: list[str]) -> tuple[list[str], list[str]]:
    """(config dirs given with ``--config-dir``/``-cd``, overrides) of a subcommand's arguments."""
    config_dirs, overrides, skip = [], [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg.startswith("-"):
            flag, eq, value = arg.partition("=")
            if flag in ("-cd", "--config-dir"):
                if eq:
                    config_dirs.append(value)
                elif i + 1 < len(args):
                    config_dirs.append(args[i + 1])
            skip = flag in FLAGS_WITH_VALUE and not eq and i + 1 < len(args) and not args[i + 1].startswith("-")
            continue
        overrides.append(arg)
    return config_dirs, overrides


def unknown_key_message(config_name: str, args: list[str]) -> Optional[str]:
    """One paragraph about an override of a key that the composed config does not have, or None."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import ConfigCompositionException
    from omegaconf import DictConfig, OmegaConf

    if GlobalHydra.instance().is_initialized():  # called in-process under another Hydra app: leave it
        return None
    config_dirs, overrides = split_argv(args)
    try:
        plain = [o.input_line for o in OverridesParser.create().parse_overrides(overrides)
                 if not o.is_sweep_override()]
    except Exception:  # noqa: BLE001 - a malformed override: Hydra's own message says where
        return None
    search = [f"hydra.searchpath=[{','.join('file://' + str(Path(d).resolve()) for d in config_dirs)}]"] \
        if config_dirs else []

    def composed(chosen: list[str]):
        with initialize_config_module(config_module="fairrun.conf", version_base="1.3"):
            return compose(config_name=config_name, overrides=chosen + search)

    try:
        composed(plain)
        return None
    except ConfigCompositionException as err:
        text = f"{err} {err.__cause__ or ''}"
        found = re.search(r"Could not override '([^']+)'", text)
        if not found or not re.search(r"not in struct|Key '[^']+' not in '", text):
            return wrong_type_message(text) or preset_key_message(text) or plugin_without_yaml_message(text)
    except Exception:  # noqa: BLE001 - anything else is the app's to report
        return None
    key = found.group(1)
    bad = [o for o in plain if o.split("=", 1)[0] == key]
    section, _, leaf = key.rpartition(".")
    try:
        node = composed([o for o in plain if o not in bad])
        node = OmegaConf.select(node, section) if section else node
    except Exception:  # noqa: BLE001
        node = None
    keys = sorted(k for k in node.keys() if k != "_target_") if isinstance(node, DictConfig) else []
    name = node.get("name") if isinstance(node, DictConfig) else None
    where = f"'{section}'" + (f" ({section}={name})" if name and section in REGISTRIES else "")
    given = bad[0] if bad else key
    schema = schema_fields(section, node)
    if schema is not None and leaf in schema[1]:
        return paragraph(
            f"fairrun: error: {given}: the YAML of {section}={name} does not list the key '{leaf}', although "
            f"its schema {schema[0]} has it (Hydra only accepts keys the YAML lists). Add '{leaf}: <default>' "
            f"to that YAML, or set it with +{given}.")
    keys = schema[1] if schema is not None else keys
    return paragraph(
        f"fairrun: error: unknown key '{key}' (in {given}): {where if section else 'the config'} has no key "
        f"'{leaf}'. " + (f"Its keys are: {', '.join(keys)}. " if keys else "")
        + "Correct the spelling (fairrun checks every section against its schema, so a new key cannot be "
        "added with +).")


def wrong_type_message(text: str) -> Optional[str]:
    """One paragraph for an override whose value the key's schema cannot take (Hydra composes the config
    against the schemas of fairrun.config.store: ``trainer.epochs=ten`` fails there), or None."""
    found = re.search(r"Error merging override ([^=\s]+)=\S*\s+Value '(.*?)'(?: of type '\w+')? "
                      r"(?:could not be converted to (\w+)|is not a valid (\w+))", text)
    if not found:
        return None
    key, value, wanted = found.group(1), found.group(2), found.group(3) or found.group(4)
    accepted = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false", "bool": "true or false"}.get(wanted, wanted)
    return paragraph(f"fairrun: error: invalid value for '{key}': {value!r}. Accepted: {accepted} (the type of "
                     f"'{key}' in its schema; every key, its type and its default: docs/keys.md).")


def preset_key_message(text: str) -> Optional[str]:
    """One paragraph for a YAML preset that sets a key its schema does not have (e.g. ``etta: 1`` in a
    ``method/mydro.yaml`` that extends ``/schema/method/groupdro``), or None."""
    found = re.search(r"In '([^']+)': ConfigKeyError raised while composing config:\s+Key '([^']+)' not in "
                      r"'(\w+)'\s+full_key: (\S+)", text)
    if not found:
        return None
    preset, key, schema, full_key = found.groups()
    section = full_key.rpartition(".")[0]
    from fairrun.config.store import schema_fields_by_name

    fields = sorted(schema_fields_by_name(schema))
    return paragraph(f"fairrun: error: the config file {preset}.yaml sets '{key}' ({full_key}), a key that its "
                     f"schema {schema} does not have" + (f"; the keys of '{section}' are: {', '.join(fields)}"
                                                         if fields else "")
                     + ". Correct the spelling in that file (a preset may only change its schema's keys).")


def plugin_without_yaml_message(text: str) -> Optional[str]:
    """One paragraph when ``group=name`` has no config file but an installed package declares ``name`` as an
    entry point of that registry (its YAML is not on Hydra's search path), or None."""
    import importlib

    found = re.search(r"Could not find '(\w+)/(\w+)'", text)
    if not found or found.group(1) not in REGISTRIES:
        return None
    group, name = found.groups()
    module, attribute = REGISTRIES[group]
    if name not in getattr(importlib.import_module(module), attribute).plugin_names():
        return None
    return paragraph(f"fairrun: error: {group}={name} is installed (an entry point of fairrun.{group}s) but Hydra "
                     f"finds no config file {group}/{name}.yaml: put the plugin's config directory on the search "
                     f"path, e.g. 'hydra.searchpath=[pkg://<its package>.conf]' or --config-dir DIR "
                     f"(docs/extending.md, \"Installing a plugin as a package\").")


REGISTRIES = {"method": ("fairrun.methods", "METHODS"), "model": ("fairrun.models", "MODELS"),
              "dataset": ("fairrun.data.registry", "DATASETS")}


def schema_fields(section: str, node) -> Optional[tuple[str, list[str]]]:
    """(schema name, its keys) of a method / model / dataset section (built-in or a user's ``_target_``)."""
    import dataclasses
    import importlib

    if section not in REGISTRIES or node is None:
        return None
    module, attribute = REGISTRIES[section]
    try:
        entry = getattr(importlib.import_module(module), attribute).resolve(node)
    except Exception:  # noqa: BLE001 - an unknown name or a broken target: validation reports it later
        return None
    return entry.Config.__qualname__, sorted(f.name for f in dataclasses.fields(entry.Config))
