"""``+sweep=methods``: the methods that suit the configured dataset and target, for the ``${fairrun_methods:}``
resolver of ``conf/sweep/methods.yaml`` (registered by :mod:`fairrun.sweep` at start-up of every command)."""
from __future__ import annotations

import dataclasses
import json
import logging

from omegaconf import DictConfig, OmegaConf

from fairrun.core.errors import FairrunError

log = logging.getLogger("fairrun")


# -- +sweep=methods -------------------------------------------------------------------------------

def describe_dataset(dataset) -> tuple[int, int]:
    """(classes of the target, protected groups) of a validated dataset config, from metadata only
    (on-disk datasets: the annotation files; synthetic: a handful of generated images)."""
    from fairrun.data.groups import check_attributes, group_names
    from fairrun.data.registry import DATASETS

    entry = DATASETS[dataset.name]
    if entry.read_table is None:  # synthetic: the attribute values do not depend on the split sizes
        from fairrun.data.synthetic import make_synthetic

        small = max(16, 4 * dataset.num_groups)
        values = make_synthetic(dataclasses.replace(dataset, n_train=small, n_val=small, n_test=small,
                                                    image_size=16, group_proportions=None,
                                                    label_group_corr=0.0))["train"].attribute_values
    else:
        from fairrun.data.files import table_and_splits

        values = table_and_splits(dataset, entry.read_table)[0].attribute_values
    check_attributes(values, dataset.target, dataset.protected)
    return len(values[dataset.target]), len(group_names(values, dataset.protected))


_METHODS_CACHE: dict[str, str] = {}


def methods_for(run_node: DictConfig) -> str:
    """The comma-separated method sweep for a composed ``fairrun train`` config (without ``hydra``)."""
    from fairrun.config import validate_run_config

    key = json.dumps(OmegaConf.to_container(run_node, resolve=False), sort_keys=True, default=str)
    if key in _METHODS_CACHE:
        return _METHODS_CACHE[key]
    run = validate_run_config(run_node)  # an invalid base config is reported as itself, not as "no method"
    try:
        num_classes, num_groups = describe_dataset(run.dataset)
    except FairrunError as err:
        log.warning("+sweep=methods: the dataset's metadata could not be read (%s); methods are not filtered by "
                    "the target's classes or the number of groups", " ".join(str(err).split()))
        num_classes = num_groups = None
    names, refused = suitable_methods(run_node, num_classes, num_groups)
    if not names:
        raise FairrunError("+sweep=methods: no method suits this configuration: " +
                           "; ".join(f"{name}: {why}" for name, why in refused.items()))
    for name, why in refused.items():
        log.info("+sweep=methods leaves out method=%s: %s", name, why)
    _METHODS_CACHE[key] = ",".join(names)
    return _METHODS_CACHE[key]


def _task_config_from_overrides(hydra_node: DictConfig) -> DictConfig:
    """Compose the task config again from ``hydra.overrides.task`` (sweeps and ``+sweep=`` left out): under
    ``--cfg hydra`` Hydra resolves the hydra node alone."""
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not GlobalHydra.instance().is_initialized():
        raise FairrunError("${fairrun_methods:} needs the composed fairrun train config (dataset, method, ...).")
    overrides = OverridesParser.create().parse_overrides(list(hydra_node.overrides.task))
    keep = [o.input_line for o in overrides if not o.is_sweep_override() and o.key_or_group != "sweep"]
    return compose(config_name=hydra_node.job.config_name, overrides=keep)


def suitable_methods(run_cfg, num_classes: int | None, num_groups: int | None) -> tuple[list[str], dict[str, str]]:
    """The registered methods that can train on ``run_cfg``'s dataset, target and settings.

    ``run_cfg`` is a composed ``fairrun train`` config without its ``hydra`` node (an OmegaConf DictConfig);
    each method is tried with its shipped defaults (its schema and preset) in place of ``run_cfg.method``:
    it suits when the whole run config validates (the method's own range checks and ``validate_run`` rules,
    e.g. DP-SGD refuses AMP) and the method accepts a target of ``num_classes`` classes and ``num_groups``
    protected groups (e.g. FairALM's TPR constraint needs a binary target); ``None`` skips that check.
    Presets whose file name differs from the method they configure (``dpsgd_study``) are not methods.

    Returns ``(names, refused)``: the suitable names, ``erm`` (the baseline) first, then alphabetically,
    and ``{name: reason}`` for the others.
    """
    from omegaconf import OmegaConf

    from fairrun.config import validate_run_config
    from fairrun.config.store import option_values
    from fairrun.core.errors import FairrunError
    from fairrun.methods import build_method
    from fairrun.methods.registry import METHODS, RUNTIME_NEEDS

    names = sorted(METHODS, key=lambda name: (name != "erm", name))
    suitable, refused = [], {}
    for name in names:
        try:
            shipped = option_values("method", name)
        except KeyError:
            refused[name] = (f"not a built-in method (a user's own method is swept by naming it: "
                             f"method=erm,{name})")
            continue
        candidate = OmegaConf.create(OmegaConf.to_container(run_cfg, resolve=False))
        candidate.method = OmegaConf.create(shipped)  # its trainer/model recipe (dpsgd) is composed by Hydra in the job
        try:
            run = validate_run_config(candidate)
            if num_classes is not None and num_groups is not None:
                build_method(run.method, num_classes=num_classes, num_groups=num_groups)
                needs = RUNTIME_NEEDS.get(name)
                if needs and (num_classes, num_groups) != needs:
                    raise FairrunError(f"method={name} needs a {needs[0]}-class target and {needs[1]} protected "
                                       f"groups; this configuration has {num_classes} classes and {num_groups} "
                                       f"groups.")
        except FairrunError as err:
            refused[name] = " ".join(str(err).split())
            continue
        suitable.append(name)
    return suitable, refused


def methods_resolver(_root_: DictConfig) -> str:
    """``${fairrun_methods:}`` (``hydra.sweeper.params.method`` of conf/sweep/methods.yaml) for a root."""
    container = OmegaConf.to_container(_root_, resolve=False)
    container.pop("hydra", None)
    if "dataset" not in container and "hydra" in _root_:
        return methods_for(_task_config_from_overrides(_root_.hydra))
    return methods_for(OmegaConf.create(container))
