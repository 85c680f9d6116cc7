"""Before a subcommand's Hydra app starts (so before a run directory, a log file or any data exists): the first
mistake of the command line becomes one paragraph, exit code 2, naming the bad value, the closest valid one
(``difflib``) and the accepted ones (Hydra's own report is a multi-line traceback hint such as ``Could not
override 'method.gama'. ... Key 'gama' is not in struct``):

- a key the composed config does not have, set or added with ``+`` (``methd=erm``, ``+trainer.epoch=3``);
- a group option without a config file (``method=grupdro``, ``model=resnt18``, ``+sweep=methds``);
- a value of the wrong type for its schema (``trainer.epochs=ten``);
- for train / data / prepare, whatever the command's own validation rejects (``fairrun.config``), including
  ``dataset.target`` / ``dataset.protected`` against the dataset's attribute names, known without reading
  image data (:meth:`fairrun.data.registry.Dataset.attribute_names`).

The config is composed with Hydra's compose API (about 0.1 s each), honouring ``--config-dir``, so a key
misspelled in a user's own method (``--config-dir myconf method=focal method.gama=1``) is reported the same
way as one of a built-in section. A multirun's sweeps are checked value by value (:func:`override_sets`).
Anything the checks here cannot decide is left to Hydra and the app.
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
    """One paragraph about the first mistake in a command's overrides, or None: a key the composed config
    does not have, a group option without a config file, a value of the wrong type (each with the closest
    valid name), and for train / data / prepare a value that the command's full config validation rejects
    (:func:`fairrun.config.validate_run_config`, including the dataset's attribute names), so that no data
    is generated, read or decoded, and no run directory is created, for a config that would be refused.

    A sweep override (``a=1,2``) is expanded: the config is composed and checked with every sweep at its first
    value, then once for each other value of each sweep (the others at their first value).
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if GlobalHydra.instance().is_initialized():  # called in-process under another Hydra app: leave it
        return None
    config_dirs, overrides = split_argv(args)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # noqa: BLE001 - a malformed override: Hydra's own message says where
        return None
    search = [f"hydra.searchpath=[{','.join('file://' + str(Path(d).resolve()) for d in config_dirs)}]"] \
        if config_dirs else []
    from hydra import initialize_config_module

    try:
        with initialize_config_module(config_module="fairrun.conf", version_base="1.3"):
            for chosen in override_sets(parsed):
                message = check_overrides(config_name, chosen, search)
                if message:
                    return message
    except Exception:  # noqa: BLE001 - a check that cannot run here: the app reports what it finds
        return None
    return None


MAX_SWEEP_CHECKS = 64  # compositions checked for one multirun (each ~0.1 s)


def override_sets(parsed: list) -> list[list[str]]:
    """The override lists to check: every sweep at its first value, then each other value of each sweep once
    (the other sweeps at their first value). A sweep that cannot be enumerated here (``interval(...)``,
    ``glob(...)``) is left out: Hydra's sweeper reports its mistakes."""
    fixed, sweeps = [], []
    for override in parsed:
        if not override.is_sweep_override():
            fixed.append(override.input_line)
            continue
        try:
            values = list(override.sweep_string_iterator())
        except Exception:  # noqa: BLE001
            continue
        if values:
            sweeps.append([f"{override.get_key_element()}={value}" for value in values])
    first = [values[0] for values in sweeps]
    sets = [fixed + first]
    for i, values in enumerate(sweeps):
        sets += [fixed + first[:i] + [value] + first[i + 1:] for value in values[1:]]
    return sets[:MAX_SWEEP_CHECKS]


def _compose(config_name: str, chosen: list[str], search: list[str]):
    """The config composed with ``chosen`` (inside :func:`unknown_key_message`'s Hydra initialisation)."""
    from hydra import compose

    return compose(config_name=config_name, overrides=chosen + search)


def check_overrides(config_name: str, chosen: list[str], search: list[str]) -> Optional[str]:
    """One paragraph about the first mistake of one list of plain overrides (see :func:`unknown_key_message`),
    or None."""
    from hydra.errors import ConfigCompositionException

    try:
        cfg = _compose(config_name, chosen, search)
    except ConfigCompositionException as err:
        text = f"{err} {err.__cause__ or ''}"
        found = re.search(r"Could not override '([^']+)'", text)
        if not found or not re.search(r"not in struct|Key '[^']+' not in '", text):
            return (wrong_type_message(text) or preset_key_message(text) or plugin_without_yaml_message(text)
                    or group_option_message(text, chosen))
        return key_message(config_name, found.group(1), chosen, search)
    except Exception:  # noqa: BLE001 - anything else is the app's to report
        return None
    return validation_message(config_name, cfg, chosen, search)


def key_message(config_name: str, key: str, chosen: list[str], search: list[str]) -> str:
    """The paragraph for an override of ``key``, which the config composed without it does not have: the
    closest existing key and every key of its section."""
    from omegaconf import DictConfig, OmegaConf

    from fairrun.core.validation import closest

    bad = [o for o in chosen if o.split("=", 1)[0].lstrip("+~") == key]
    section, _, leaf = key.rpartition(".")
    try:
        node = _compose(config_name, [o for o in chosen if o not in bad], search)
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
    match = closest(leaf, keys)
    suggestion = ""
    if match is not None:
        fixed = f"{section}.{match}" if section else match
        value = given.split("=", 1)[1] if "=" in given else None
        suggestion = f"Did you mean '{fixed}={value}'? " if value is not None else f"Did you mean '{fixed}'? "
    return paragraph(
        f"fairrun: error: unknown key '{key}' (in {given}): {where if section else 'the config'} has no key "
        f"'{leaf}'. " + suggestion + (f"Its keys are: {', '.join(keys)}. " if keys else "")
        + "Correct the spelling (fairrun checks every section against its schema, so a new key cannot be "
        "added with +).")


def group_option_message(text: str, chosen: list[str]) -> Optional[str]:
    """One paragraph for ``group=option`` when the group has no such option (``method=grupdro``): the closest
    option and every option Hydra found for that group (built-in and ``--config-dir`` ones), or None."""
    from fairrun.core.validation import did_you_mean

    found = re.search(r"Could not find '([^']+)/([^'/]+)'", text)
    listed = re.search(r"Available options in '([^']+)':\s*\n((?:[ \t]+\S+[^\n]*\n?)+)", text)
    if not found or not listed or listed.group(1) != found.group(1):
        return None
    group, option = found.groups()
    options = [line.strip() for line in listed.group(2).splitlines() if line.strip()]
    given = next((o for o in chosen if o.split("=", 1)[0].lstrip("+~").replace(".", "/") == group), None)
    prefix = given[:len(given) - len(given.lstrip("+~"))] if given else ""
    return paragraph(f"fairrun: error: unknown {group} '{option}'" + (f" (in {given})" if given else "")
                     + ": "
                     f"there is no config file {group}/{option}.yaml."
                     f"{did_you_mean(option, options, prefix + group + '=')} "
                     f"The options of '{group}' are: {', '.join(options)}.")


def validation_message(config_name: str, cfg, chosen: list[str], search: list[str]) -> Optional[str]:
    """The command's own validation of the composed config (train: the whole run config and the dataset's
    attribute names; data: the data report config; prepare: the dataset section), as the app would report
    it, or None when it passes or the command has no such check here."""
    from omegaconf import OmegaConf

    from fairrun.core.errors import FairrunError

    validate = validator(config_name)
    if validate is None or OmegaConf.is_missing(cfg, "dataset") or cfg.get("dataset") is None:
        return None  # no dataset= chosen: the CLI says so itself
    try:
        validate(cfg)
        check_dataset_root(cfg.dataset)
        return None
    except FairrunError as err:
        return added_key_message(config_name, chosen, search) or paragraph(f"fairrun: error: {err}")
    except Exception:  # noqa: BLE001 - e.g. an interpolation only the app can resolve: the app's to report
        return None


# built-in datasets read from dataset.root: (module with the dataset's OBTAIN text, the dataset's name in messages)
ROOT_DATASETS = {"celeba": ("fairrun.data.celeba", "CelebA"), "fairface": ("fairrun.data.fairface", "FairFace"),
                 "utkface": ("fairrun.data.utkface", "UTKFace"), "imdb_wiki": ("fairrun.data.imdb_wiki", "IMDB-WIKI")}


def check_dataset_root(dataset) -> None:
    """Raise the dataset reader's own FairrunError (:func:`fairrun.data.table.resolve_root`: which folder, where
    to get the data) when a built-in on-disk dataset's ``dataset.root`` is unset or not a directory, so that the
    mistake stops the command before Hydra makes a run directory."""
    import importlib

    from fairrun.data.table import resolve_root

    if dataset is None or dataset.get("name") not in ROOT_DATASETS:
        return
    module, title = ROOT_DATASETS[dataset.get("name")]
    resolve_root(dataset, title, importlib.import_module(module).OBTAIN)


def validator(config_name: str):
    """The validation function of a command's composed config, or None (eval, gan, vae: the app checks)."""
    if config_name == "train":
        from fairrun.config import validate_run_config
        return validate_run_config
    if config_name == "data":
        from fairrun.config import validate_data_report_config
        return validate_data_report_config
    if config_name == "prepare":
        from fairrun.data.registry import validate_dataset_section
        return lambda cfg: validate_dataset_section(cfg.dataset)
    return None


def added_key_message(config_name: str, chosen: list[str], search: list[str]) -> Optional[str]:
    """The unknown-key paragraph for a ``+key=value`` override that adds a key the config does not have
    (``+trainer.epoch=3``, ``+methd=erm``), or None. ``+group=option`` overrides are left alone."""
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import DictConfig, OmegaConf

    added = [o for o in chosen if o.startswith("+") and "=" in o]
    if not added:
        return None
    repository = GlobalHydra.instance().hydra.config_loader.repository
    added = [o for o in added
             if not repository.group_exists(o.split("=", 1)[0].lstrip("+").replace(".", "/"))]
    for override in added:
        key = override.split("=", 1)[0].lstrip("+")
        section, _, leaf = key.rpartition(".")
        try:
            node = _compose(config_name, [o for o in chosen if o != override], search)
            node = OmegaConf.select(node, section) if section else node
        except Exception:  # noqa: BLE001
            continue
        if isinstance(node, DictConfig) and leaf not in node:
            return key_message(config_name, key, chosen, search)
    return None


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
