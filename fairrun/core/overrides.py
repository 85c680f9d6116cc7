"""The keys of Hydra overrides, which of them a multirun sweeps, and short names for them: what the end-of-job
line (:mod:`fairrun.report.console`) and TensorBoard's run names (:mod:`fairrun.training.tensorboard`) show."""
from __future__ import annotations

from pathlib import Path


def override_key(override: str) -> str:
    """The config key of ``key=value`` (``+``/``~`` prefixes and an ``@package`` suffix left out)."""
    return override.split("=", 1)[0].lstrip("+~").split("@", 1)[0]


def swept_keys(sweep_dir: Path) -> set[str] | None:
    """The keys a multirun sweeps, from ``<sweep dir>/multirun.yaml`` (written by Hydra's basic sweeper):
    every command-line override with several values (``method=erm,groupdro``, ``seed=range(3)``) and every
    key of ``hydra.sweeper.params`` (the ``+sweep=`` presets, studies). None when the file is missing or
    unreadable."""
    import yaml
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        hydra_cfg = (yaml.safe_load((Path(sweep_dir) / "multirun.yaml").read_text()) or {}).get("hydra") or {}
        task = [str(t) for t in (hydra_cfg.get("overrides") or {}).get("task") or []]
        params = (hydra_cfg.get("sweeper") or {}).get("params") or {}
        parsed = OverridesParser.create().parse_overrides(task)
    except Exception:  # noqa: BLE001 - any failure means "cannot tell": the caller names by every override
        return None
    return {o.key_or_group for o in parsed if o.is_sweep_override()} | {override_key(str(k)) for k in params}


def short_key_names(keys: list[str]) -> dict[str, str]:
    """Each config key's last part (``imbalance.ratio`` -> ``ratio``) where no other of ``keys`` has the same
    last part, else the whole key (``+``/``~`` prefixes left out)."""
    keys = [override_key(k) for k in keys]
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: short if last.count(short) == 1 else k for k, short in zip(keys, last)}
