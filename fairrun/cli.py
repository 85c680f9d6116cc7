"""The ``fairrun`` console script: pops the subcommand and hands the rest of argv to its Hydra app.

Subcommands are Hydra applications (``@hydra.main`` over ``pkg://fairrun.conf``), so every Hydra
flag works after the subcommand: ``--help``, ``--cfg job``, ``-m`` (multirun), overrides.
"""
from __future__ import annotations

import logging
import os
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

import fairrun.resolvers  # noqa: F401  (every resolver of fairrun's YAML, registered before Hydra composes)
import fairrun.sweep  # noqa: F401  (registers the sweep's resolvers at start-up: see fairrun.resolvers)
from fairrun.errors import FairrunError, SweepFailed, paragraph

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
SUBCOMMAND_HELP = {
    "gan train": "dataset=NAME [gan.*] [out_dir=DIR]: train fairrun's GAN on a dataset (or one group / label "
                 "of it) and export a TorchScript generator",
    "vae train": "dataset=NAME [vae.*] [out_dir=DIR]: train the convolutional VAE",
    "vae minority": "run_dir=DIR [fraction=0.05]: the rarest training images under a trained VAE's latent "
                    "density",
}
HELP_FLAGS = ("-h", "--help", "help")
# Hydra's help flags: they compose the config to list its keys.
HYDRA_HELP_FLAGS = ("-h", "--help", "--hydra-help")
# Commands whose config has no default dataset (`dataset: ???`): `fairrun prepare`, `fairrun data`.
NEEDS_DATASET = ("prepare", "data")
HELP_DATASET = "synthetic"  # the dataset their --help composes the config with when none is given
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

# each subcommand's Hydra config (conf/<name>.yaml)
CONFIG_NAMES = {"train": "train", "eval": "eval", "prepare": "prepare", "data": "data", "gan train": "gan",
                "vae train": "vae", "vae minority": "vae_minority"}




def report_user_error(err: Exception, run_dir: Path | None = None) -> None:
    """Print a user mistake as one paragraph (no traceback) and record it in the run dir."""
    text = paragraph(f"fairrun: error: {err}")
    print(text, file=sys.stderr)
    # a refusal to write into a run directory (in use, another run's) is not that directory's error
    if run_dir is not None and Path(run_dir).is_dir() and getattr(err, "record_in_run_dir", True):
        try:
            (Path(run_dir) / "error.txt").write_text(text + "\n")
        except OSError as write_err:  # a full disk or read-only dir: the message above is what counts
            print(f"fairrun: (could not also record it in {Path(run_dir) / 'error.txt'}: "
                  f"{write_err.strerror or write_err})", file=sys.stderr)


@contextmanager
def user_errors(run_dir: Path | None = None):
    """Turn FairrunError into exit code 2 and Ctrl-C / SIGTERM into exit code 130 / 143, each with a clear
    message."""
    from fairrun.errors import Interrupted

    global _task_started
    _task_started = True
    try:
        yield
    except FairrunError as err:
        report_user_error(err, run_dir)
        sys.exit(2)
    except Interrupted as err:
        print(paragraph(f"fairrun: interrupted: {err}. Run the same command again (for a single run, "
                         f"with hydra.run.dir={run_dir}) to resume."), file=sys.stderr)
        sys.exit(err.exit_code)


@hydra.main(version_base="1.3", config_path="pkg://fairrun.conf", config_name="train")
def train_app(cfg: DictConfig) -> None:
    """`fairrun train`: validate the composed config, then train and evaluate.

    In a multirun each job keeps its failure to itself (``<job dir>/error.txt``) so the other jobs run;
    a single run exits with code 2 on a user error, 130 on Ctrl-C and 143 on SIGTERM.

    The run directory's lock (:mod:`fairrun.rundir_lock`) is held before anything is written there (error.txt
    included) and released on every way out; a directory in use is refused (exit code 2; in a multirun, that
    job) and left untouched.
    """
    from fairrun.rundir_lock import DirBusy, hold, run_dir_cure
    from fairrun.sweep import run_sweep_job

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        global _task_started
        _task_started = True
        try:
            with hold(run_dir, "run", run_dir_cure(run_dir)):
                run_sweep_job(lambda: train_into(cfg, run_dir), run_dir, hydra_cfg.job.num,
                              Path(hydra_cfg.sweep.dir))
        except DirBusy as err:  # not logged: the job's log file is the other process' train.log
            print(paragraph(f"fairrun: error: job {hydra_cfg.job.num} not run: {err}"), file=sys.stderr)
        return
    with user_errors():  # a directory in use: nothing is written there
        with hold(run_dir, "run", run_dir_cure(run_dir)), user_errors(run_dir):
            params = hydra_cfg.sweeper.get("params") or {}
            if params:
                raise FairrunError(f"The sweep preset sets hydra.sweeper.params ({', '.join(params)}), "
                                   f"which only a multirun uses: add -m (fairrun train -m ...) to launch the "
                                   f"sweep, or leave the +sweep=... preset out for a single run.")
            train_into(cfg, run_dir)


def train_into(cfg: DictConfig, run_dir: Path):
    """Validate ``cfg`` and train into ``run_dir`` (whose lock the caller holds).

    ``hydra.output_subdir`` is null in conf/train.yaml, so Hydra writes nothing into the run directory: its
    ``.hydra/`` files are written here once :func:`~fairrun.train.run_training` accepts the config (not into a
    run of another configuration, nor into a finished run). A failure before that, in a directory that already
    holds a run, is not recorded there (error.txt) either: the message goes to the terminal only.
    """
    from fairrun.config import validate_run_config
    from fairrun.rundir_lock import holds_a_run
    from fairrun.train import run_training

    accepted, had_run = [], holds_a_run(run_dir)

    def accept() -> None:
        accepted.append(True)
        write_hydra_files(cfg, run_dir)

    try:
        return run_training(validate_run_config(cfg), run_dir, on_accept=accept)
    except Exception as err:
        if had_run and not accepted:
            err.record_in_run_dir = False
        raise


def write_hydra_files(task_cfg: DictConfig, run_dir: Path) -> None:
    """``<run dir>/.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml``: what Hydra itself writes there
    (with ``hydra.output_subdir: .hydra``), from the running job's HydraConfig. fairrun report reads
    ``overrides.yaml`` (its ``--by`` columns, a sweep's jobs) and ``hydra.yaml`` (the job name)."""
    import copy

    from omegaconf import OmegaConf, open_dict, read_write

    from fairrun import rundir

    hydra_root = copy.deepcopy(HydraConfig.instance().cfg)
    with read_write(hydra_root.hydra), open_dict(hydra_root.hydra):
        hydra_root.hydra.output_subdir = ".hydra"
    folder = Path(run_dir) / ".hydra"
    rundir.write_text(OmegaConf.to_yaml(task_cfg), folder / "config.yaml")
    rundir.write_text(OmegaConf.to_yaml(hydra_root), folder / "hydra.yaml")
    rundir.write_text(OmegaConf.to_yaml(hydra_root.hydra.overrides.task), folder / "overrides.yaml")


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
    from fairrun.data.registry import validate_dataset_section
    from fairrun.sections import GpuConfig
    from fairrun.validation import typed_section
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


def dataset_names() -> list[str]:
    """The options of the ``dataset`` config group (conf/dataset/*.yaml), read without composing anything."""
    from importlib import resources

    folder = resources.files("fairrun.conf").joinpath("dataset")
    return sorted(p.name[:-len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _chooses(args: list[str], group: str) -> bool:
    """Whether the overrides choose an option of config group ``group`` (``group=x``, ``+group=x``, ...)."""
    return any("=" in a and a.split("=", 1)[0].lstrip("+~") == group for a in args)


def _subcommand_usage(command: str) -> str:
    lines = [f"usage: fairrun {command} <{'|'.join(SUBCOMMANDS[command])}> [hydra overrides ...]", "",
             f"{COMMANDS[command]}", "", "commands:"]
    for word in SUBCOMMANDS[command]:
        name = f"{command} {word}"
        lines.append(textwrap.fill(f"fairrun {name} {SUBCOMMAND_HELP[name]}", width=100, initial_indent="  ",
                                   subsequent_indent="      "))
    lines += ["", f"Each has its own help, e.g. fairrun {command} {SUBCOMMANDS[command][0]} --help "
                  f"(config keys and examples)."]
    return "\n".join(lines)


# The exit code when a BrokenPipeError reaches main(): what a shell reports for a command ended by SIGPIPE
# (128 + 13), as `yes | head -1` does; only visible with `set -o pipefail`.
EXIT_STDOUT_CLOSED = 141


def _stdout_closed() -> None:
    """stdout's reader went away (``fairrun --help | head -2``): point stdout's file descriptor at devnull, so
    that what is still buffered, later output and Python's own flush at exit go nowhere, quietly (the
    Python docs' recipe for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (pytest's capture): nothing to do
        pass


class QuietStdout:
    """``sys.stdout`` of the ``fairrun`` command: the real stream until its reader goes away, then silence.

    Hydra prints help and composed configs inside its own error handler, and logging handlers catch their
    own errors, so a BrokenPipeError there would become a traceback (or a "Logging error" per line) long
    before :func:`main` could catch it. Writes after the reader left are dropped, and the command goes on:
    a training run piped into ``head`` still finishes and writes its run directory."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self.closed_early = False

    def write(self, text: str) -> int:
        if not self.closed_early:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self.closed_early:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        self.closed_early = True
        _stdout_closed()

    def __getattr__(self, name: str):  # fileno, isatty, encoding, buffer, ...
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``fairrun`` console script (:func:`run_command`). A closed stdout ends nothing
    and prints no traceback: ``fairrun --help | head -2`` stops quietly (exit code 0; 141, as for a
    command ended by SIGPIPE, if a BrokenPipeError still reaches this point)."""
    if argv is None and sys.stdout is not None and not isinstance(sys.stdout, QuietStdout):
        sys.stdout = QuietStdout(sys.stdout)  # the console script; not when called in-process (tests)
    try:
        run_command(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_closed()
        sys.exit(EXIT_STDOUT_CLOSED)
    except SystemExit:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _stdout_closed()
            sys.exit(EXIT_STDOUT_CLOSED)
        raise


def run_command(argv: list[str] | None = None) -> None:
    """Pop the subcommand from ``argv`` (default: ``sys.argv[1:]``) and run its Hydra app."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = "\n".join(f"  {name:<8}{text}" for name, text in COMMANDS.items())
    if not argv or argv[0] in HELP_FLAGS:
        print(USAGE.format(commands=commands))
        return
    command, rest = argv[0], argv[1:]
    if command == "report":  # not a Hydra app: it reads finished runs, it composes no config
        from fairrun.report.cli import report_main

        sys.exit(report_main(rest))
    if command in SUBCOMMANDS:
        words = SUBCOMMANDS[command]
        if rest and rest[0] in HELP_FLAGS:
            print(_subcommand_usage(command))
            return
        if not rest or rest[0] not in words:
            given = f"{rest[0]!r}" if rest else "nothing"
            print(paragraph(f"fairrun: error: fairrun {command} needs one of: {', '.join(words)} (got {given}), "
                             f"e.g. fairrun {command} {words[0]} dataset=synthetic. {COMMANDS[command]}."),
                  file=sys.stderr)
            sys.exit(2)
        command, rest = f"{command} {rest[0]}", rest[1:]
    if command not in APPS:
        print(paragraph(f"fairrun: error: unknown command {command!r}. Available commands: "
                         f"{', '.join(COMMANDS)} (see fairrun --help)."), file=sys.stderr)
        sys.exit(2)
    if command == "eval" and not any(a.startswith("run_dir=") for a in rest) and \
            not any(a in ("--help", "-h", "--hydra-help", "--info") or a.startswith("--cfg") for a in rest):
        print(paragraph("fairrun: error: fairrun eval needs the run to evaluate: "
                         "fairrun eval run_dir=PATH (a directory written by fairrun train)."), file=sys.stderr)
        sys.exit(2)
    modes = [a for a in rest if a in ("-m", "--multirun", "-r", "--run", "--info", "-sc")
             or a.startswith(("--cfg", "-c=", "--shell-completion")) or a == "-c"]
    if len(modes) > 1:
        print(paragraph(f"fairrun: error: {' and '.join(modes)} cannot be combined: Hydra does one of run "
                         f"(-r), multirun (-m), print a config (--cfg), --info or shell completion at a time. "
                         f"To see what a sweep would run, drop -m: e.g. fairrun {command} +sweep=methods --cfg "
                         f"hydra --resolve -p hydra.sweeper.params prints the swept values, and --cfg job "
                         f"the config of one job."), file=sys.stderr)
        sys.exit(2)
    if not any(a in HYDRA_HELP_FLAGS for a in rest):
        from fairrun.commands.preflight import unknown_key_message

        message = unknown_key_message(CONFIG_NAMES[command], rest)
        if message:
            print(message, file=sys.stderr)
            sys.exit(2)
    help_dataset = False
    if command in NEEDS_DATASET and not _chooses(rest, "dataset"):
        if not any(a in HYDRA_HELP_FLAGS for a in rest):
            print(paragraph(f"fairrun: error: fairrun {command} needs the dataset to read: dataset=NAME, "
                             f"one of {', '.join(dataset_names())} (e.g. fairrun {command} dataset=celeba "
                             f"dataset.root=/data/celeba; see fairrun {command} --help)."), file=sys.stderr)
            sys.exit(2)
        # --help composes the config to list its keys: show them with the built-in dataset
        rest, help_dataset = [*rest, f"dataset={HELP_DATASET}"], True
    sys.argv = [f"fairrun-{command.replace(' ', '-')}", *rest]
    try:
        APPS[command]()
    except SweepFailed:
        raise  # some job of a multirun failed: exit code 1 after the summary
    except SystemExit as exit_:
        # Hydra reports composition errors (unknown group option, bad override) itself and exits 1
        # before our task runs: those are user mistakes, so they exit 2 like ours.
        if exit_.code == 1 and not _task_started:
            sys.exit(2)
        if help_dataset and not exit_.code:
            print(paragraph(f"(No dataset= was given: the config above is shown with "
                             f"dataset={HELP_DATASET}. fairrun {command} needs one: dataset=NAME, one of "
                             f"{', '.join(dataset_names())}.)"))
        raise
    except KeyboardInterrupt:  # a second Ctrl-C, or Ctrl-C while parallel jobs ran in other processes
        print(paragraph("fairrun: interrupted. Launch the same command again (for a sweep, with "
                         "hydra.sweep.dir=<its directory>) to resume: finished runs are skipped and unfinished "
                         "ones continue from checkpoints/last.pt."), file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
