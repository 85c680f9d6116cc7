"""`fairrun prepare` (the decoded-image cache) and `fairrun data` (counts, charts and samples of a dataset)."""
from __future__ import annotations

from pathlib import Path

import hydra
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from fairrun.commands.common import user_errors


@hydra.main(version_base="1.3", config_path="pkg://fairrun.conf", config_name="prepare")
def prepare_app(cfg: DictConfig) -> None:
    """`fairrun prepare dataset=NAME`: build the decoded-image cache."""
    from fairrun.data.registry import validate_dataset_section
    from fairrun.core.sections import GpuConfig
    from fairrun.core.validation import typed_section
    from fairrun.data.prepare import run_prepare

    with user_errors():
        run_prepare(validate_dataset_section(cfg.dataset), typed_section("gpu", GpuConfig, cfg.gpu).num_workers)


@hydra.main(version_base="1.3", config_path="pkg://fairrun.conf", config_name="data")
def data_app(cfg: DictConfig) -> None:
    """`fairrun data dataset=NAME`: counts per split, group-frequency chart, sample grid."""
    from fairrun.config import validate_data_report_config
    from fairrun.report.data_report import run_data_report

    out_dir = Path(to_absolute_path(cfg.out_dir))
    with user_errors(out_dir):
        run_data_report(validate_data_report_config(cfg), out_dir)
