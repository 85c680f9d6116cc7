"""`fairrun eval run_dir=PATH`: evaluate a finished run again, or on another dataset."""
from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from fairrun.commands.common import user_errors


@hydra.main(version_base="1.3", config_path="pkg://fairrun.conf", config_name="eval")
def eval_app(cfg: DictConfig) -> None:
    """`fairrun eval run_dir=PATH`: reload the best checkpoint and evaluate val and test again."""
    from fairrun.evaluation.rerun import run_eval

    overrides = HydraConfig.get().overrides.task
    explicit = {o.split("=", 1)[0].split(".", 1)[1] for o in overrides
                if o.startswith("dataset.") and "=" in o}
    with user_errors():
        run_eval(Path(to_absolute_path(cfg.run_dir)), cfg, explicit)
