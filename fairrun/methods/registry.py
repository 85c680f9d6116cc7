"""Method registry: YAML name -> Method class. Adding a method = one module here + one YAML."""
from __future__ import annotations

METHODS: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator registering a :class:`~fairrun.methods.base.Method` under ``cls.name``."""
    if cls.name in METHODS:
        raise ValueError(f"method '{cls.name}' registered twice")
    METHODS[cls.name] = cls
    return cls


# Needs a method checks only once training has started (in its ``prepare``), so that ``suitable_methods`` can
# leave the method out up front: {name: (classes of the target, protected groups)}. gan_debias and minority_gan
# label generated images with binary target and protected-attribute classifiers.
RUNTIME_NEEDS: dict[str, tuple[int, int]] = {"gan_debias": (2, 2), "minority_gan": (2, 2)}


def suitable_methods(run_cfg, num_classes: int | None, num_groups: int | None) -> tuple[list[str], dict[str, str]]:
    """The registered methods that can train on ``run_cfg``'s dataset, target and settings.

    ``run_cfg`` is a composed ``fairrun train`` config without its ``hydra`` node (an OmegaConf DictConfig);
    each method is tried with its shipped defaults (``conf/method/<name>.yaml``) in place of ``run_cfg.method``:
    it suits when the whole run config validates (the method's own range checks and ``validate_run`` rules,
    e.g. DP-SGD refuses AMP) and the method accepts a target of ``num_classes`` classes and ``num_groups``
    protected groups (e.g. FairALM's TPR constraint needs a binary target); ``None`` skips that check.
    Presets whose file name differs from the method they configure (``dpsgd_study``) are not methods.

    Returns ``(names, refused)``: the suitable names, ``erm`` (the baseline) first, then alphabetically,
    and ``{name: reason}`` for the others.
    """
    from importlib import resources

    from omegaconf import OmegaConf

    from fairrun.config import validate_run_config
    from fairrun.errors import FairrunError
    from fairrun.methods import build_method

    conf = resources.files("fairrun.conf") / "method"
    names = sorted(METHODS, key=lambda name: (name != "erm", name))
    suitable, refused = [], {}
    for name in names:
        option = conf / f"{name}.yaml"
        if not option.is_file():
            refused[name] = f"no conf/method/{name}.yaml"
            continue
        candidate = OmegaConf.create(OmegaConf.to_container(run_cfg, resolve=False))
        method_node = OmegaConf.create(option.read_text())
        method_node.pop("defaults", None)  # its trainer/model recipe (dpsgd) is composed by Hydra in the job
        candidate.method = method_node
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
