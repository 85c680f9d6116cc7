"""The ``fairrun`` console script: pops the subcommand and hands the rest of argv to its Hydra app.

Subcommands are Hydra applications (``@hydra.main`` over ``pkg://fairrun.conf``), so every Hydra
flag works after the subcommand: ``--help``, ``--cfg job``, ``-m`` (multirun), overrides.
"""
from __future__ import annotations

import logging
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

import fairrun.sweep  # noqa: F401  (registers the ${fairrun_methods:} resolver before Hydra composes)
from fairrun.errors import FairrunError

log = logging.getLogger("fairrun")

COMMANDS = {
    "train": "train a classifier, evaluate it on val and test, write the run directory",
    "eval": "re-evaluate a finished run (fairrun eval run_dir=PATH), or test it on another dataset "
            "(… dataset=NAME dataset.root=DIR)",
    "prepare": "decode a dataset once into the image cache: fairrun prepare dataset=NAME dataset.root=DIR",
    "data": "group x label counts, group-frequency chart and sample grid: fairrun data dataset=NAME",
    "gan": "fairrun gan train dataset=NAME [gan.*]: train fairrun's GAN, export a TorchScript generator",
    "vae": "fairrun vae train dataset=NAME [vae.*] | fairrun vae minority run_dir=PATH fraction=0.05",
    "report": "fairrun report PATH [--metrics ...] [--by ...]: one table and plots from every run under PATH",
}
# Commands with a second word: `fairrun gan train`, `fairrun vae minority`.
SUBCOMMANDS = {"gan": ("train",), "vae": ("train", "minority")}
USAGE = """usage: fairrun <command> [hydra overrides ...]

fairrun trains image classifiers and measures how fair they are; every run leaves a run directory
with results.pkl, predictions.pkl, TensorBoard logs and checkpoints.

commands:
{commands}

examples:
  fairrun train                                  # built-in synthetic dataset, CNN, ERM
  fairrun train model=resnet18 trainer.epochs=10 seed=1
  fairrun train -m imbalance.ratio=0.9,0.99 seed=0,1
  fairrun train -m +sweep=[imbalance,seeds]          # presets: imbalance, methods, seeds
  fairrun train -m +sweep=methods hydra/launcher=local_parallel   # several jobs at once (GPUs shared)
  fairrun train --help                           # config groups and keys
  fairrun train --cfg job                        # print the composed config
  fairrun eval run_dir=outputs/2026-01-01/12-00-00
  fairrun eval run_dir=outputs/2026-01-01/12-00-00 dataset=utkface dataset.root=/data/UTKFace
  fairrun prepare dataset=celeba dataset.root=/data/celeba dataset.image_size=64
  fairrun data dataset=celeba dataset.root=/data/celeba imbalance=study imbalance.ratio=0.99
  fairrun gan train dataset=synthetic gan.epochs=20
  fairrun vae train dataset=synthetic && fairrun vae minority run_dir=outputs/vae/DATE/TIME fraction=0.05
"""

_task_started = False


def _paragraph(message: str) -> str:
    return textwrap.fill(" ".join(str(message).split()), width=100, subsequent_indent="  ")


def report_user_error(err: Exception, run_dir: Path | None = None) -> None:
    """Print a user mistake as one paragraph (no traceback) and record it in the run dir."""
    text = _paragraph(f"fairrun: error: {err}")
    print(text, file=sys.stderr)
    if run_dir is not None and Path(run_dir).is_dir():
        (Path(run_dir) / "error.txt").write_text(text + "\n")


@contextmanager
def user_errors(run_dir: Path | None = None):
    """Turn FairrunError into exit code 2 and Ctrl-C into exit code 130, each with a clear message."""
    from fairrun.train import Interrupted

    global _task_started
    _task_started = True
    try:
        yield
    except FairrunError as err:
        report_user_error(err, run_dir)
        sys.exit(2)
    except Interrupted as err:
        print(_paragraph(f"fairrun: interrupted: {err}. Run the same command again (for a single run, "
                         f"with hydra.run.dir={run_dir}) to resume."), file=sys.stderr)
        sys.exit(130)


@hydra.main(version_base="1.3", config_path="pkg://fairrun.conf", config_name="train")
def train_app(cfg: DictConfig) -> None:
    """`fairrun train`: validate the composed config, then train and evaluate.

    In a multirun each job keeps its failure to itself (``<job dir>/error.txt``) so the other jobs run;
    a single run exits with code 2 on a user error and 130 on Ctrl-C.
    """
    from fairrun.config import validate_run_config
    from fairrun.sweep import ERROR, run_sweep_job
    from fairrun.train import run_training

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    (run_dir / ERROR).unlink(missing_ok=True)  # from an earlier attempt of this run
    if hydra_cfg.mode == RunMode.MULTIRUN:
        global _task_started
        _task_started = True
        run_sweep_job(lambda: run_training(validate_run_config(cfg), run_dir), run_dir, hydra_cfg.job.num,
                      Path(hydra_cfg.sweep.dir))
        return
    with user_errors(run_dir):
        params = hydra_cfg.sweeper.get("params") or {}
        if params:
            raise FairrunError(f"The sweep preset sets hydra.sweeper.params ({', '.join(params)}), which only a "
                               f"multirun uses: add -m (fairrun train -m ...) to launch the sweep, or leave the "
                               f"+sweep=... preset out for a single run.")
        run_training(validate_run_config(cfg), run_dir)


@hydra.main(version_base="1.3", config_path="pkg://fairrun.conf", config_name="eval")
def eval_app(cfg: DictConfig) -> None:
    """`fairrun eval run_dir=PATH`: reload the best checkpoint and evaluate val and test again."""
    from fairrun.eval_run import run_eval

    overrides = HydraConfig.get().overrides.task
    explicit = {o.split("=", 1)[0].split(".", 1)[1] for o in overrides
                if o.startswith("dataset.") and "=" in o}
    with user_errors():
        run_eval(Path(to_absolute_path(cfg.run_dir)), cfg, explicit)


@hydra.main(version_base="1.3", config_path="pkg://fairrun.conf", config_name="prepare")
def prepare_app(cfg: DictConfig) -> None:
    """`fairrun prepare dataset=NAME`: build the decoded-image cache."""
    from fairrun.config import GpuConfig, typed_section, validate_dataset_section
    from fairrun.prepare import run_prepare

    with user_errors():
        run_prepare(validate_dataset_section(cfg.dataset), typed_section("gpu", GpuConfig, cfg.gpu).num_workers)


@hydra.main(version_base="1.3", config_path="pkg://fairrun.conf", config_name="data")
def data_app(cfg: DictConfig) -> None:
    """`fairrun data dataset=NAME`: counts per split, group-frequency chart, sample grid."""
    from fairrun.config import validate_data_report_config
    from fairrun.data_report import run_data_report

    out_dir = Path(to_absolute_path(cfg.out_dir))
    with user_errors(out_dir):
        run_data_report(validate_data_report_config(cfg), out_dir)


@hydra.main(version_base="1.3", config_path="pkg://fairrun.conf", config_name="gan")
def gan_train_app(cfg: DictConfig) -> None:
    """`fairrun gan train dataset=NAME`: train the built-in GAN and export its generator."""
    from fairrun.generative.gan import run_gan_train

    out_dir = Path(to_absolute_path(cfg.out_dir))
    with user_errors(out_dir):
        run_gan_train(cfg)


@hydra.main(version_base="1.3", config_path="pkg://fairrun.conf", config_name="vae")
def vae_train_app(cfg: DictConfig) -> None:
    """`fairrun vae train dataset=NAME`: train the convolutional VAE."""
    from fairrun.generative.vae import run_vae_train

    out_dir = Path(to_absolute_path(cfg.out_dir))
    with user_errors(out_dir):
        run_vae_train(cfg)


@hydra.main(version_base="1.3", config_path="pkg://fairrun.conf", config_name="vae_minority")
def vae_minority_app(cfg: DictConfig) -> None:
    """`fairrun vae minority run_dir=PATH`: the rarest training images under the VAE's latent density."""
    from fairrun.generative.minority import run_vae_minority

    with user_errors():
        run_vae_minority(cfg)


APPS = {"train": train_app, "eval": eval_app, "prepare": prepare_app, "data": data_app,
        "gan train": gan_train_app, "vae train": vae_train_app, "vae minority": vae_minority_app}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``fairrun`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = "\n".join(f"  {name:<8}{text}" for name, text in COMMANDS.items())
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE.format(commands=commands))
        return
    command, rest = argv[0], argv[1:]
    if command == "report":  # not a Hydra app: it reads finished runs, it composes no config
        from fairrun.report.cli import report_main

        sys.exit(report_main(rest))
    if command in SUBCOMMANDS:
        words = SUBCOMMANDS[command]
        if not rest or rest[0] not in words:
            given = f"{rest[0]!r}" if rest else "nothing"
            print(_paragraph(f"fairrun: error: fairrun {command} needs one of: {', '.join(words)} (got {given}), "
                             f"e.g. fairrun {command} {words[0]} dataset=synthetic. {COMMANDS[command]}."),
                  file=sys.stderr)
            sys.exit(2)
        command, rest = f"{command} {rest[0]}", rest[1:]
    if command not in APPS:
        print(_paragraph(f"fairrun: error: unknown command {command!r}. Available commands: "
                         f"{', '.join(COMMANDS)} (see fairrun --help)."), file=sys.stderr)
        sys.exit(2)
    if command == "eval" and not any(a.startswith("run_dir=") for a in rest) and \
            not any(a in ("--help", "-h", "--hydra-help", "--info") or a.startswith("--cfg") for a in rest):
        print(_paragraph("fairrun: error: fairrun eval needs the run to evaluate: "
                         "fairrun eval run_dir=PATH (a directory written by fairrun train)."), file=sys.stderr)
        sys.exit(2)
    sys.argv = [f"fairrun-{command.replace(' ', '-')}", *rest]
    try:
        APPS[command]()
    except fairrun.sweep.SweepFailed:
        raise  # some job of a multirun failed: exit code 1 after the summary
    except SystemExit as exit_:
        # Hydra reports composition errors (unknown group option, bad override) itself and exits 1
        # before our task runs: those are user mistakes, so they exit 2 like ours.
        if exit_.code == 1 and not _task_started:
            sys.exit(2)
        raise
    except KeyboardInterrupt:  # a second Ctrl-C, or Ctrl-C while parallel jobs ran in other processes
        print(_paragraph("fairrun: interrupted. Launch the same command again (for a sweep, with "
                         "hydra.sweep.dir=<its directory>) to resume: finished runs are skipped and unfinished "
                         "ones continue from checkpoints/last.pt."), file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
