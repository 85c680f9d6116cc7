"""Shell completion of the ``fairrun`` command: bash, and zsh through its ``bashcompinit`` layer.

``fairrun --completion bash`` prints :data:`BASH_SCRIPT`; a user installs it with one line in
``~/.bashrc``: ``eval "$(fairrun --completion bash)"``. On TAB the script's function
``_fairrun_complete`` asks fairrun for the candidates of the line left of the cursor
(``COMP_LINE=... fairrun --complete``, :func:`candidates`): the command word (train, eval, ...,
gan train), a study's name, ``fairrun report``'s flags, and for the Hydra commands what Hydra's own
bash completion finds (config groups and their options, config keys, values), asked with the line
rewritten as Hydra expects it (``fairrun <overrides>``: Hydra strips one program word, not fairrun's
command words). ``fairrun train -sc query=bash`` takes the same path, so Hydra's own flag works with
``COMP_LINE`` naming the real command (``COMP_LINE="fairrun train meth"``).
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import io
import os
import re
import sys
from dataclasses import dataclass
from typing import Callable

SHELLS = ("bash", "zsh")
TOP_FLAGS = ("--help", "--version", "--completion")
# Hydra's flag for its own completion, and its three actions (install=SHELL, uninstall=SHELL, query=SHELL).
SC_FLAGS = ("-sc", "--shell-completion")
SC_ACTIONS = ("install", "uninstall", "query")
# Launchers that Hydra's plugins register under their own names; fairrun's presets (conf/hydra/launcher/) set
# them up for fairrun (local_parallel: joblib, slurm: submitit_slurm, slurm_local: submitit_local). Help and
# completion list the presets only; the plugins' names still work when given (hydra/launcher=joblib).
PLUGIN_LAUNCHERS = ("joblib", "submitit_local", "submitit_slurm")

BASH_SCRIPT = r"""# fairrun shell completion (bash; zsh with bashcompinit).
# Install: eval "$(fairrun --completion bash)" in ~/.bashrc
_fairrun_complete()
{
    local line="${COMP_LINE:0:COMP_POINT}"
    local program="${line%%[[:space:]]*}"
    local word="${line##*[[:space:]]}"
    local IFS=$' \t\n'
    COMPREPLY=($(COMP_LINE="$line" COMP_POINT=${#line} "$program" --complete 2>/dev/null))
    if [[ -n "${BASH_VERSION-}" ]]; then
        # bash splits the word being completed at COMP_WORDBREAKS ('=' and ':' among them) and replaces only
        # the part after the last one: give it the candidates from there on
        local i cut=0
        for ((i = 0; i < ${#word}; i++)); do
            [[ "${COMP_WORDBREAKS-}" == *"${word:i:1}"* ]] && cut=$((i + 1))
        done
        if ((cut > 0)); then
            for i in "${!COMPREPLY[@]}"; do COMPREPLY[i]="${COMPREPLY[i]:cut}"; done
        fi
        # a key's '=' or a section's '.': its value or sub-key follows without a space
        if ((${#COMPREPLY[@]} == 1)) && [[ "${COMPREPLY[0]}" == *[=./] ]]; then
            compopt -o nospace 2>/dev/null
        fi
    fi
}
complete -o default -F _fairrun_complete fairrun
"""
ZSH_PREFIX = "autoload -U +X bashcompinit && bashcompinit\n"
UNINSTALL_SCRIPT = "complete -r fairrun 2>/dev/null; unset -f _fairrun_complete\n"
POINTER = ("fairrun's shell completion covers all its commands: add eval \"$(fairrun --completion bash)\" "
           "to ~/.bashrc (zsh: eval \"$(fairrun --completion zsh)\" in ~/.zshrc), then open a new shell. "
           "Hydra's -sc flag of one command is only its query (COMP_LINE=... fairrun train -sc query=bash).")


@dataclass(frozen=True)
class CommandTable:
    """What completion needs to know of fairrun's commands (built by :func:`fairrun.cli.command_table`: this
    module does not import fairrun.cli, which imports it)."""

    commands: tuple[str, ...]  # the first words: train, eval, ..., report
    subcommands: dict[str, tuple[str, ...]]  # second words: gan -> (train,), vae -> (train, minority)
    apps: dict[str, Callable[[], None]]  # each Hydra command's app ("train", "gan train", ...)
    config_names: dict[str, str]  # each Hydra command's config (conf/<name>.yaml)
    needs_dataset: tuple[str, ...] = ()  # commands without a default dataset
    help_dataset: str = "synthetic"  # the dataset a query composes those with


def script(shell: str) -> str:
    """The completion script for ``shell`` (bash, or zsh: bashcompinit then the bash script)."""
    return (ZSH_PREFIX if shell == "zsh" else "") + BASH_SCRIPT


def completion_main(args: list[str]) -> int:
    """``fairrun --completion SHELL``: print the completion script (exit code 0), or a one-paragraph error
    naming the shell that has none (exit code 2)."""
    from fairrun.core.errors import paragraph

    if len(args) != 1 or args[0] not in SHELLS:
        given = f"{args[0]!r}" if args else "nothing"
        print(paragraph(f"fairrun: error: fairrun --completion needs the shell: one of {', '.join(SHELLS)} "
                        f"(got {given}). Install with eval \"$(fairrun --completion bash)\" in ~/.bashrc."),
              file=sys.stderr)
        return 2
    print(script(args[0]), end="")
    return 0


def words_of(line: str) -> tuple[list[str], str]:
    """The finished words of ``line`` after the program (``fairrun``, a path to it, or ``python -m fairrun``)
    and the word being completed (empty after a space)."""
    words = line.split()
    current = "" if not line or line[-1].isspace() else words.pop()
    if len(words) >= 3 and os.path.basename(words[0]).startswith("python") and words[1] == "-m":
        words = words[2:]  # python -m fairrun ...
    return words[1:], current


def candidates(table: CommandTable, line: str) -> list[str]:
    """Every completion of the last word of ``line`` (the command line left of the cursor), sorted: command
    words, ``--completion``'s shells, ``gan``'s and ``vae``'s second words, a study's name and flags,
    ``fairrun report``'s flags, and for the Hydra commands :func:`hydra_candidates`."""
    words, word = words_of(line)
    if not words:
        options = [*table.commands, *TOP_FLAGS]
    elif words[0].startswith("-") and words[0] != "--completion":
        options = []
    elif words[0] == "--completion":
        options = list(SHELLS) if len(words) == 1 else []
    elif words[0] in table.subcommands:
        if len(words) == 1:
            options = list(table.subcommands[words[0]])
        elif words[1] in table.subcommands[words[0]]:
            return hydra_candidates(table, f"{words[0]} {words[1]}", words[2:], word)
        else:
            options = []
    elif words[0] == "study":
        return study_candidates(table, words[1:], word)
    elif words[0] == "report":
        options = report_flags() if word.startswith("-") else []  # else the shell's file names
    elif words[0] in table.apps:
        return hydra_candidates(table, words[0], words[1:], word)
    else:
        options = []
    return sorted(o for o in options if o.startswith(word))


def study_candidates(table: CommandTable, words: list[str], word: str) -> list[str]:
    """``fairrun study``: the study names and flags first, then its flags and ``fairrun train``'s
    overrides."""
    from fairrun.commands.study import FLAGS

    named = [w for w in words if not w.startswith("-")]
    if word.startswith("-"):
        return sorted(f for f in FLAGS if f.startswith(word))
    if not named:
        return sorted(n for n in [*study_names(), *FLAGS] if n.startswith(word))
    return hydra_candidates(table, "train", [w for w in named[1:] if "=" in w], word)


def study_names() -> list[str]:
    """fairrun's studies (``conf/study/*.yaml``), read without importing ``fairrun.conf`` (which imports torch
    to fill Hydra's ConfigStore: seconds on every TAB)."""
    from importlib.util import find_spec
    from pathlib import Path

    folders = find_spec("fairrun.conf").submodule_search_locations or []
    return sorted({p.stem for folder in folders for p in (Path(folder) / "study").glob("*.yaml")})


# Hydra's flags of fairrun's Hydra commands (fairrun's own -sc answers completion; --config-path does not apply)
HYDRA_FLAGS = ("--cfg", "--config-dir", "--config-name", "--help", "--hydra-help", "--info", "--multirun",
               "--package", "--resolve", "--run")

# `fairrun report`'s options (fairrun/report/cli.py build_parser; importing it takes seconds: pandas, torch).
REPORT_FLAGS = ("--baseline", "--by", "--format", "--gap", "--help", "--metrics", "--out", "--run", "--size",
                "--split")


def report_flags() -> list[str]:
    """``fairrun report``'s options (:data:`REPORT_FLAGS`)."""
    return list(REPORT_FLAGS)


def hydra_candidates(table: CommandTable, command: str, words: list[str], word: str) -> list[str]:
    """What Hydra's bash completion finds for ``word`` after the overrides ``words`` of the Hydra command
    ``command`` (train, gan train, ...), less the plugins' own launchers (:data:`PLUGIN_LAUNCHERS`).

    Hydra's query reads ``COMP_LINE`` and strips one program word, so it is given ``fairrun WORDS WORD``; the
    app runs in this process with its output captured. Nothing when the config cannot be composed."""
    if word.startswith("-"):
        return sorted(f for f in HYDRA_FLAGS if f.startswith(word))
    # the overrides (and -m, which changes the composed config): a flag's value is no override, and --help or
    # --version would make Hydra's query print its help
    words = [w for w in words if "=" in w and not w.startswith("-") or w in ("-m", "--multirun")]
    chosen = any(w.lstrip("+~").startswith("dataset=") for w in [*words, word])
    if command in table.needs_dataset and not chosen:
        words = [*words, f"dataset={table.help_dataset}"]  # `dataset: ???`: compose with the built-in dataset
    importlib.import_module("fairrun.conf")  # fills Hydra's ConfigStore before Hydra builds its repository

    out = io.StringIO()
    saved_argv, saved_line = list(sys.argv), os.environ.get("COMP_LINE")
    os.environ["COMP_LINE"] = " ".join(["fairrun", *words, word])
    sys.argv = [f"fairrun-{command.replace(' ', '-')}", "-sc", "query=bash"]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            table.apps[command]()
    except SystemExit:
        pass
    finally:
        sys.argv = saved_argv
        if saved_line is None:
            os.environ.pop("COMP_LINE", None)
        else:
            os.environ["COMP_LINE"] = saved_line
        _clear_hydra()
    return sorted(c for c in out.getvalue().split() if shown(c, table.config_names[command]))


def shown(candidate: str, config_name: str) -> bool:
    """Whether completion offers Hydra's ``candidate`` to the command of ``conf/<config_name>.yaml``: not the
    plugins' launchers, and no option of a config group the command does not use (Hydra offers every group of
    fairrun's config package to every command: ``gan=`` or ``schema/`` to ``fairrun train``); the groups it
    uses are those its ``--help`` lists (``${fairrun_config_groups:...}`` in its config)."""
    if candidate in {f"hydra/launcher={name}" for name in PLUGIN_LAUNCHERS}:
        return False
    match = re.match(r"[+~]?(\w+)[=/]", candidate)
    return not match or match.group(1) not in all_groups() - command_groups(config_name)


def _conf_folder():
    from importlib.util import find_spec
    from pathlib import Path

    return Path(find_spec("fairrun.conf").submodule_search_locations[0])


@functools.lru_cache(maxsize=None)
def all_groups() -> frozenset[str]:
    """Every config group of fairrun's config package: its folders (``conf/<group>/``) and the groups of the
    schemas it stores (fairrun.config.store)."""
    from fairrun.config.store import COMMAND_SECTIONS, SCHEMA_GROUP, group_schemas

    folders = {p.name for p in _conf_folder().iterdir() if p.is_dir() and not p.name.startswith("_")}
    return frozenset(folders | set(group_schemas()) | set(COMMAND_SECTIONS) | {SCHEMA_GROUP})


@functools.lru_cache(maxsize=None)
def command_groups(config_name: str) -> frozenset[str]:
    """The config groups the ``--help`` of the command of ``conf/<config_name>.yaml`` lists, and ``hydra``."""
    text = (_conf_folder() / f"{config_name}.yaml").read_text()
    match = re.search(r"fairrun_config_groups:([\w,]+)", text)
    return frozenset({"hydra", *(match.group(1).split(",") if match else ())})


def _clear_hydra() -> None:
    """Forget the Hydra app that answered a query (an in-process caller may run another one)."""
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()


def shell_completion(table: CommandTable, command: str, rest: list[str]) -> int:
    """Hydra's ``-sc`` flag of fairrun's command ``command``: ``query=SHELL`` prints the candidates of
    ``COMP_LINE`` (which names fairrun's command: ``fairrun train meth``), ``install=bash|zsh`` fairrun's own
    script, ``uninstall=bash|zsh`` the lines that remove it. Returns the exit code (2 with a one-paragraph
    error for another shell or action)."""
    from fairrun.core.errors import paragraph

    actions = [a.split("=", 1) for a in rest if a.split("=", 1)[0] in SC_ACTIONS]
    shell = actions[0][1] if len(actions) == 1 else ""
    if shell not in SHELLS:
        given = ", ".join(a for a in rest if a not in SC_FLAGS) or "nothing"
        print(paragraph(f"fairrun: error: fairrun {command} -sc needs one of install=SHELL, uninstall=SHELL "
                        f"or query=SHELL with SHELL one of {', '.join(SHELLS)} (got {given}). {POINTER}"),
              file=sys.stderr)
        return 2
    action = actions[0][0]
    if action == "install":
        print(script(shell), end="")
    elif action == "uninstall":
        print(UNINSTALL_SCRIPT, end="")
    else:
        line = os.environ.get("COMP_LINE", "")
        print(" ".join(candidates(table, command_line(command, line))))
    return 0


def command_line(command: str, line: str) -> str:
    """``line`` (a ``COMP_LINE`` given to ``fairrun COMMAND -sc query=...``) as :func:`candidates` reads it:
    unchanged when it names the command (``fairrun train meth``), else its words after the program are taken
    as the command's overrides (Hydra's own convention: ``fairrun-train meth``)."""
    words, word = words_of(line)
    if words[:len(command.split())] == command.split():
        return line
    program = (line.split() or ["fairrun"])[0]
    return " ".join(["fairrun" if program.startswith("fairrun-") else program, command, *words, word])


def complete_main(table: CommandTable) -> int:
    """``fairrun --complete``: print the candidates of ``COMP_LINE`` (cut at ``COMP_POINT``), one per line
    (what the completion script calls)."""
    line = os.environ.get("COMP_LINE", "")
    point = os.environ.get("COMP_POINT", "")
    if re.fullmatch(r"\d+", point):
        line = line[:int(point)]
    for option in candidates(table, line):
        print(option)
    return 0
