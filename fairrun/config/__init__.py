"""The run configuration: schemas, Hydra's config store, and the validated run.

- :mod:`fairrun.config.store` registers every config group's schema (the dataclass of each dataset, model,
  method, trainer, gpu, imbalance and postprocess option) in Hydra's ConfigStore. The dataclasses hold
  the defaults; ``conf/*/*.yaml`` files exist only for presets that differ from them.
- :mod:`fairrun.config.run` checks a composed config and returns the typed :class:`RunConfig`.
- :mod:`fairrun.config.keys` renders the key tables of docs/configuration.md from the schemas.
"""
from fairrun.config.run import (DataReportConfig, RunConfig, load_run_config, validate_data_report_config,
                                validate_run_config)

__all__ = ["RunConfig", "DataReportConfig", "load_run_config", "validate_run_config",
           "validate_data_report_config"]
