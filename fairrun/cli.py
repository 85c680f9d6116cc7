"""The ``fairrun`` console script: pops the subcommand and hands the rest of argv to its Hydra app.

Subcommands are Hydra applications (``@hydra.main`` over ``pkg://fairrun.conf``), so every Hydra
flag works after the subcommand: ``--help``, ``--cfg job``, ``-m`` (multirun), overrides.
"""
from __future__ import annotations

import logging
import os
import sys
import textwrap


import fairrun.core.resolvers  # noqa: F401  (every resolver of fairrun's YAML, registered before Hydra composes)
import fairrun.sweep  # noqa: F401  (registers the sweep's resolvers at start-up: see fairrun.core.resolvers)
from fairrun.commands.common import task_started
from fairrun.commands.data import data_app, prepare_app
from fairrun.commands.evaluate import eval_app
from fairrun.commands.generative import gan_train_app, vae_minority_app, vae_train_app
from fairrun.commands.train import train_app
from fairrun.core.errors import SweepFailed, paragraph

log = logging.getLogger("fairrun")

COMMANDS = {
    "train": "train a classifier, evaluate it on val and test, write the run directory",
    "eval": "re-evaluate a finished run (fairrun eval run_dir=PATH), or test it on another dataset "
            "(… dataset=NAME dataset.root=DIR)",
    "prepare": "decode a dataset once into the image cache: fairrun prepare dataset=NAME dataset.root=DIR",
    "data": "group x label counts, group-frequency chart and sample grid: fairrun data dataset=NAME",
    "gan": "fairrun gan train dataset=NAME [gan.*]: train fairrun's GAN, export a TorchScript generator",
    "vae": "fairrun vae train dataset=NAME [vae.*] | fairrun vae minority run_dir=PATH fraction=0.05",
    "study": "fairrun study NAME [--tiny] [--dry-run]: a published study as one command (fairrun study --list)",
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
VERSION_FLAGS = ("--version", "-V")
SHELL_COMPLETION_FLAGS = ("-sc", "--shell-completion")  # Hydra's flag: fairrun.commands.completion answers it
# Hydra's help flags: they compose the config to list its keys.
HYDRA_HELP_FLAGS = ("-h", "--help", "--hydra-help")
# Commands whose config has no default dataset (`dataset: ???`): `fairrun prepare`, `fairrun data`.
NEEDS_DATASET = ("prepare", "data")
HELP_DATASET = "synthetic"  # the dataset their --help composes the config with when none is given
USAGE = """usage: fairrun <command> [hydra overrides ...]
       fairrun --version | --completion bash|zsh

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

shell completion (commands, config groups, keys and values on TAB): add to ~/.bashrc
  eval "$(fairrun --completion bash)"            # zsh: eval "$(fairrun --completion zsh)" in ~/.zshrc
"""

# each subcommand's Hydra config (conf/<name>.yaml)
CONFIG_NAMES = {"train": "train", "eval": "eval", "prepare": "prepare", "data": "data", "gan train": "gan",
                "vae train": "vae", "vae minority": "vae_minority"}


APPS = {"train": train_app, "eval": eval_app, "prepare": prepare_app, "data": data_app,
        "gan train": gan_train_app, "vae train": vae_train_app, "vae minority": vae_minority_app}


def dataset_names() -> list[str]:
    """The options of the ``dataset`` config group (the built-in datasets' schemas and presets)."""
    from fairrun.config.store import option_names

    return option_names("dataset")


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


def _top_level_flag(flag: str, args: list[str]) -> int:
    """``fairrun --version`` / ``-V`` (prints ``fairrun <version>``), ``fairrun --completion SHELL`` (the
    shell completion script) and ``fairrun --complete`` (what that script calls on TAB): the exit code."""
    if flag in VERSION_FLAGS:
        from fairrun import __version__

        print(f"fairrun {__version__}")
        return 0
    from fairrun.commands import completion

    if flag == "--completion":
        return completion.completion_main(args)
    return completion.complete_main(command_table())


def command_table():
    """fairrun's commands as shell completion reads them
    (:class:`fairrun.commands.completion.CommandTable`)."""
    from fairrun.commands.completion import CommandTable

    return CommandTable(commands=tuple(COMMANDS), subcommands=dict(SUBCOMMANDS), apps=dict(APPS),
                        config_names=dict(CONFIG_NAMES), needs_dataset=NEEDS_DATASET,
                        help_dataset=HELP_DATASET)


def run_command(argv: list[str] | None = None) -> None:
    """Pop the subcommand from ``argv`` (default: ``sys.argv[1:]``) and run its Hydra app."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = "\n".join(f"  {name:<8}{text}" for name, text in COMMANDS.items())
    if not argv or argv[0] in HELP_FLAGS:
        print(USAGE.format(commands=commands))
        return
    if argv[0] in VERSION_FLAGS or argv[0] in ("--completion", "--complete"):
        sys.exit(_top_level_flag(argv[0], argv[1:]))
    command, rest = argv[0], argv[1:]
    if command == "study":  # launches fairrun train -m +study=NAME ... (fairrun/commands/study.py)
        from fairrun.commands.study import study_main

        code, train_args = study_main(rest)
        if train_args is None:
            sys.exit(code)
        command, rest = "train", train_args
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
        from fairrun.core.validation import did_you_mean

        print(paragraph(f"fairrun: error: unknown command {command!r}.{did_you_mean(command, COMMANDS, 'fairrun ')} "
                         f"Available commands: {', '.join(COMMANDS)} (see fairrun --help)."), file=sys.stderr)
        sys.exit(2)
    if any(a in SHELL_COMPLETION_FLAGS for a in rest):  # Hydra's -sc, answered for the real `fairrun` command
        from fairrun.commands.completion import shell_completion

        sys.exit(shell_completion(command_table(), command, rest))
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
    if any(a in HYDRA_HELP_FLAGS for a in rest):
        from fairrun.commands.help import install_lazy_help

        install_lazy_help()
    try:
        APPS[command]()
    except SweepFailed:
        raise  # some job of a multirun failed: exit code 1 after the summary
    except SystemExit as exit_:
        # Hydra reports composition errors (unknown group option, bad override) itself and exits 1
        # before our task runs: those are user mistakes, so they exit 2 like ours.
        if exit_.code == 1 and not task_started():
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
