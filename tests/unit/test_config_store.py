"""One source per default: the schemas (dataclasses) in Hydra's ConfigStore hold every default; YAML files
in conf/<group>/ are presets that change only what differs; docs/keys.md is generated from the schemas."""
import dataclasses
from importlib import resources
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from fairrun.config.keys import field_comments, render
from fairrun.config.store import (COMMAND_SECTIONS, DataSchema, TrainSchema, VaeMinoritySchema, defaults_of,
                                  group_schemas, preset_files, schema_of)
from tests.conftest import compose_train, run_fairrun

DOCS = Path(__file__).resolve().parents[2] / "docs" / "keys.md"
GROUPS = group_schemas()
OPTIONS = [(group, option) for group, options in GROUPS.items() for option in options
           if option not in preset_files(group)]
PRESETS = [(group, option) for group in GROUPS for option in sorted(preset_files(group))]


def test_docs_keys_page_is_generated_from_the_schemas():
    assert DOCS.read_text() == render(), \
        "docs/keys.md is out of date: regenerate it with python -m fairrun.config.keys > docs/keys.md"


@pytest.mark.parametrize("group, option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_an_option_without_preset_is_its_schema(group, option):
    node = compose_train([f"{group}={option}"])[group]
    assert OmegaConf.to_container(node) == defaults_of(group, option)
    assert OmegaConf.get_type(node) is schema_of(group, option)


@pytest.mark.parametrize("group, option", PRESETS, ids=[f"{g}={o}" for g, o in PRESETS])
def test_a_preset_sets_only_what_differs_from_what_it_extends(group, option):
    text = (resources.files("fairrun.conf") / group / f"{option}.yaml").read_text()
    data = yaml.safe_load(text)
    extends = [d for d in data.pop("defaults") if isinstance(d, str) and d != "_self_"]
    assert len(extends) == 1, f"conf/{group}/{option}.yaml extends one option or its schema: {extends}"
    base = extends[0].split("/")[-1].split("@")[0]
    from_schema = extends[0].startswith(f"/schema/{group}/")
    base_values = defaults_of(group, base) if from_schema else \
        OmegaConf.to_container(compose_train([f"{group}={base}"])[group])
    assert data, f"conf/{group}/{option}.yaml sets nothing of its own"
    for key, value in data.items():
        assert key in base_values, f"conf/{group}/{option}.yaml: {key} is not a key of {base}"
        assert value != base_values[key], f"conf/{group}/{option}.yaml repeats the default {key}: {value}"
    assert dataclasses.is_dataclass(OmegaConf.get_type(compose_train([f"{group}={option}"])[group])), \
        "a preset is typed by the schema it extends (a misspelled key fails at composition)"


def test_every_key_has_a_documented_meaning():
    schemas = {schema_of(g, o) for g, o in OPTIONS} | {TrainSchema, type(TrainSchema().eval), VaeMinoritySchema,
                                                         DataSchema, *COMMAND_SECTIONS.values()}
    undocumented = [f"{schema.__qualname__}.{f.name}" for schema in schemas for f in dataclasses.fields(schema)
                    if f.name != "name" and not field_comments(schema).get(f.name)]
    assert not undocumented, "fields without a comment (docs/keys.md shows it as the key's meaning): " \
        + ", ".join(sorted(undocumented))


def test_comments_are_read_from_the_source():
    from fairrun.core.sections import TrainerConfig

    comments = field_comments(TrainerConfig)
    assert comments["optimizer"] == "adam | sgd"
    from fairrun.core.sections import ImbalanceConfig  # a comment on the line above the field

    assert field_comments(ImbalanceConfig)["balance_target"].startswith("true: the target classes")


def test_a_misspelled_key_in_a_preset_fails_at_composition(tmp_path):
    (tmp_path / "method").mkdir()
    (tmp_path / "method" / "mydro.yaml").write_text(
        "defaults:\n  - /schema/method/groupdro@_here_\n  - _self_\n\netta: 1\n")
    with initialize_config_module(config_module="fairrun.conf", version_base="1.3"):
        with pytest.raises(ConfigCompositionException, match="etta"):
            compose(config_name="train", overrides=["method=mydro", f"hydra.searchpath=[file://{tmp_path}]"])
    done = run_fairrun("train", "--config-dir", str(tmp_path), "method=mydro", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    message = " ".join(done.stderr.split())
    assert "mydro.yaml sets 'etta'" in message and "GroupDROConfig" in message and "eta" in message
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("results.pkl"))


def test_a_preset_extending_a_schema_changes_only_its_keys(tmp_path):
    (tmp_path / "method").mkdir()
    (tmp_path / "method" / "mydro.yaml").write_text(
        "defaults:\n  - /schema/method/groupdro@_here_\n  - _self_\n\neta: 0.5\n")
    with initialize_config_module(config_module="fairrun.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=["method=mydro", f"hydra.searchpath=[file://{tmp_path}]"])
    assert OmegaConf.to_container(cfg.method) == {**defaults_of("method", "groupdro"), "eta": 0.5}


@pytest.mark.parametrize("override, accepted", [
    ("trainer.epochs=ten", "an integer"), ("method.eta=abc", "a number"), ("gpu.compile=maybe", "true or false"),
])
def test_a_value_of_the_wrong_type_is_one_paragraph(tmp_path, override, accepted):
    extra = ["method=groupdro"] if override.startswith("method.") else []
    done = run_fairrun("train", *extra, override, cwd=tmp_path)
    key, value = override.split("=")
    message = " ".join(done.stderr.split())
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"invalid value for '{key}': '{value}'. Accepted: {accepted}" in message, message


def test_the_configuration_page_names_every_option_of_every_group():
    """docs/configuration.md's table of groups is prose; it must not fall behind the registries (it listed 9
    of 14 methods once)."""
    page = (DOCS.parent / "configuration.md").read_text()
    missing = [f"{group}={option}" for group in GROUPS for option in sorted(set(GROUPS[group]) | preset_files(group))
               if f"`{option}`" not in page and group in ("dataset", "model", "method", "gpu", "postprocess")]
    assert not missing, "docs/configuration.md does not name: " + ", ".join(missing)


def same_number(text: str, value) -> bool:
    try:
        return not isinstance(value, bool) and float(text) == float(value)
    except (TypeError, ValueError):
        return False


def test_defaults_quoted_in_the_methods_table_are_the_schemas():
    """docs/methods.md's "keys (defaults)" column quotes defaults as `key` (value): each must be the schema's."""
    import re

    from fairrun.config.keys import shown

    wrong = []
    for row in (DOCS.parent / "methods.md").read_text().splitlines():
        cells = [c.strip() for c in row.split(" | ")]
        name = re.fullmatch(r"\| `(\w+)`", cells[0]) if cells else None
        if not name or name.group(1) not in GROUPS["method"] or len(cells) < 4:
            continue
        defaults = defaults_of("method", name.group(1))
        for key, quoted in re.findall(r"`(\w+)` \(([^)]*)\)", cells[2]):
            if key in defaults:
                first = re.split(r"[ :,]|\\\|", quoted.strip("`"))[0].strip("`")
                if first != shown(defaults[key]) and not same_number(first, defaults[key]):
                    wrong.append(f"method={name.group(1)} {key}: docs say {first}, the schema {shown(defaults[key])}")
    assert not wrong, "\n".join(wrong)
