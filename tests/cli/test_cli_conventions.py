"""CLI conventions: ``fairrun --version`` / ``-V``, ``python -m fairrun``, shell completion of the
real ``fairrun`` command (``fairrun --completion bash``, ``fairrun --complete``, Hydra's ``-sc`` flag
with ``COMP_LINE``), and ``--hydra-help``'s one set of launchers. Everything runs in-process except
what must be a process of its own (``python -m fairrun``, the completion script in bash, which calls
the console script for the cheap words)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from tests.conftest import run_fairrun_in_process

REPO = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).parent / "fairrun"


def conf_names(*folders: str) -> list[str]:
    """The YAML files' names in the repository's ``conf/<folders>/``, read from disk."""
    return sorted(p.stem for p in REPO.joinpath("conf", *folders).glob("*.yaml"))


# --version and python -m fairrun

@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_installed_version(tmp_path, flag):
    proc = run_fairrun_in_process(flag, cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"fairrun {metadata.version('fairrun')}\n", "")


def test_python_m_fairrun_is_the_fairrun_command(tmp_path):
    version = subprocess.run([sys.executable, "-m", "fairrun", "--version"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
    assert (version.returncode, version.stdout) == (0, f"fairrun {metadata.version('fairrun')}\n")
    bare = subprocess.run([sys.executable, "-m", "fairrun"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert bare.returncode == 0
    assert bare.stdout == run_fairrun_in_process(cwd=tmp_path).stdout


def test_bare_fairrun_lists_the_commands_and_the_completion_line(tmp_path):
    from fairrun.cli import COMMANDS

    proc = run_fairrun_in_process(cwd=tmp_path)
    assert proc.returncode == 0
    listed = [line.split()[0] for line in proc.stdout.split("commands:\n")[1].split("\n\n")[0].splitlines()]
    assert listed == list(COMMANDS)
    assert 'eval "$(fairrun --completion bash)"' in proc.stdout


# what fairrun answers for a command line (in-process)

def complete(line: str) -> list[str]:
    from fairrun.cli import command_table
    from fairrun.commands.completion import candidates

    return candidates(command_table(), line)


@pytest.mark.parametrize("line, expected", [
    ("fairrun tr", ["train"]),
    ("fairrun gan ", ["train"]),
    ("fairrun vae ", ["minority", "train"]),
    ("fairrun --completion ", ["bash", "zsh"]),
    ("fairrun report --s", ["--size", "--split"]),
    ("fairrun study --d", ["--dry-run"]),
    ("python -m fairrun e", ["eval"]),
    ("fairrun nosuch ", []),
])
def test_completes_the_command_words(line, expected):
    assert complete(line) == expected


def test_completes_every_command_and_top_level_flag():
    from fairrun.cli import COMMANDS

    assert complete("fairrun ") == sorted([*COMMANDS, "--completion", "--help", "--version"])


def test_completes_a_study_name_from_conf_study():
    names = complete("fairrun study ")
    assert [n for n in names if not n.startswith("-")] == conf_names("study")
    assert complete("fairrun study celeba_r") == ["celeba_reweight"]


def test_report_flags_are_the_report_parser_s():
    from fairrun.commands.completion import REPORT_FLAGS
    from fairrun.report.cli import build_parser

    options = {s for action in build_parser()._actions for s in action.option_strings if s.startswith("--")}
    assert set(REPORT_FLAGS) == options


def test_hydra_commands_complete_keys_groups_and_options():
    from fairrun.config.store import option_names

    assert complete("fairrun train meth") == ["method.", "method="]
    methods = complete("fairrun train method=")
    assert methods == [f"method={name}" for name in option_names("method")]
    assert {"method=erm", "method=groupdro"} <= set(methods)
    assert complete("fairrun train method=gr") == ["method=groupdro"]
    assert complete("fairrun train trainer.ep") == ["trainer.epochs="]
    assert complete("fairrun gan train gan.ep") == ["gan.epochs="]
    assert complete("fairrun train +sw") == ["+sweep="]
    # fairrun data has no default dataset: the query composes with the built-in one
    assert complete("fairrun data dataset=") == [f"dataset={name}" for name in option_names("dataset")]
    # Hydra's flags; a flag before the word is no override
    assert complete("fairrun train --hy") == ["--hydra-help"]
    assert complete("fairrun train --cfg job -m seed=0,1 meth") == ["method.", "method="]
    # a study's overrides complete as fairrun train's
    assert complete("fairrun study celeba_reweight --tiny trainer.ep") == ["trainer.epochs="]


def test_hydra_commands_offer_only_their_own_groups():
    # Hydra offers every group of the config package (gan=, schema/, vae=) to every command
    assert complete("fairrun train s") == ["seed=", "study.", "study=", "sweep="]
    assert complete("fairrun train g") == ["gpu.", "gpu="]
    assert complete("fairrun gan train g") == ["gan.", "gpu.", "gpu="]
    assert complete("fairrun vae minority g") == ["gpu.", "gpu=", "grid="]
    assert complete("fairrun vae minority m") == []


def test_launchers_complete_to_fairrun_s_presets():
    assert complete("fairrun train hydra/launcher=") == \
        [f"hydra/launcher={n}" for n in sorted(["basic", *conf_names("hydra", "launcher")])]


# Hydra's -sc flag, with COMP_LINE naming the real command

@pytest.mark.parametrize("line", ["fairrun train meth", "fairrun-train meth", "/usr/bin/fairrun train meth"])
def test_sc_query_reads_the_real_command_line(tmp_path, monkeypatch, line):
    monkeypatch.setenv("COMP_LINE", line)
    proc = run_fairrun_in_process("train", "-sc", "query=bash", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "method. method=\n")


def test_sc_query_of_a_two_word_command(tmp_path, monkeypatch):
    monkeypatch.setenv("COMP_LINE", "fairrun vae minority frac")
    proc = run_fairrun_in_process("vae", "minority", "--shell-completion", "query=bash", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "fraction=\n")


def test_sc_install_prints_fairrun_s_script(tmp_path):
    script = run_fairrun_in_process("--completion", "bash", cwd=tmp_path)
    installed = run_fairrun_in_process("train", "-sc", "install=bash", cwd=tmp_path)
    assert (installed.returncode, installed.stdout) == (0, script.stdout)
    assert "fairrun-train" not in script.stdout
    assert script.stdout.rstrip().endswith("complete -o default -F _fairrun_complete fairrun")
    zsh = run_fairrun_in_process("--completion", "zsh", cwd=tmp_path)
    assert zsh.stdout == "autoload -U +X bashcompinit && bashcompinit\n" + script.stdout


@pytest.mark.parametrize("args", [["--completion", "fish"], ["--completion"],
                                  ["train", "-sc", "install=fish"], ["train", "-sc"]])
def test_an_unsupported_shell_is_one_paragraph(tmp_path, args):
    proc = run_fairrun_in_process(*args, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("fairrun: error:") and "\n\n" not in proc.stderr.strip()
    words = " ".join(proc.stderr.split())
    assert "one of bash, zsh" in words and 'eval "$(fairrun --completion bash)"' in words


# the script in bash

BASH = shutil.which("bash")


def bash_complete(script: str, line: str, point: int | None = None, stub: str = "") -> tuple[list[str], str]:
    """Source ``script`` in ``bash -c``, call its function as bash's programmable completion does for ``line``
    (cursor at ``point``) and return COMPREPLY and what a stub ``fairrun`` function (``stub``) recorded: its
    arguments, ``COMP_LINE`` and ``COMP_POINT``."""
    point = len(line) if point is None else point
    program = f"""
{stub}
eval "$SCRIPT"
COMP_LINE="$LINE"; COMP_POINT=$POINT; COMP_WORDS=(${{LINE:0:POINT}}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
_fairrun_complete
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    record = Path(os.environ.get("TMPDIR", "/tmp")) / f"fairrun-stub-{os.getpid()}"
    record.unlink(missing_ok=True)
    env = {**os.environ, "SCRIPT": script, "LINE": line, "POINT": str(point), "RECORD": str(record),
           "PATH": f"{CONSOLE_SCRIPT.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([BASH, "-c", program], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    asked = record.read_text().strip() if record.exists() else ""
    record.unlink(missing_ok=True)
    return proc.stdout.splitlines(), asked


@pytest.fixture(scope="module")
def script() -> str:
    from fairrun.commands.completion import script

    return script("bash")


# a stand-in for the console script: records what it was asked and answers like Hydra's query
STUB = """fairrun() {
    echo "$* COMP_LINE=[$COMP_LINE] COMP_POINT=$COMP_POINT" > "$RECORD"; echo "$ANSWER"
}"""


@pytest.mark.skipif(BASH is None, reason="no bash")
def test_the_script_asks_fairrun_about_the_line_left_of_the_cursor(script, monkeypatch):
    monkeypatch.setenv("ANSWER", "method=groupdro")
    line = "fairrun train method=gr seed=1"
    replies, asked = bash_complete(script, line, point=len("fairrun train method=gr"), stub=STUB)
    assert asked == "--complete COMP_LINE=[fairrun train method=gr] COMP_POINT=23"
    # '=' is in COMP_WORDBREAKS: bash replaces the text after it, so the reply is the value alone
    assert replies == ["groupdro"]


@pytest.mark.skipif(BASH is None, reason="no bash")
def test_the_script_cuts_replies_at_the_last_word_break(script, monkeypatch):
    monkeypatch.setenv("ANSWER", "method=erm method=groupdro")
    assert bash_complete(script, "fairrun train method=", stub=STUB)[0] == ["erm", "groupdro"]
    monkeypatch.setenv("ANSWER", "method. method=")
    assert bash_complete(script, "fairrun train meth", stub=STUB)[0] == ["method.", "method="]
    monkeypatch.setenv("ANSWER", "run_dir=/runs/a:b")
    assert bash_complete(script, "fairrun eval run_dir=/runs/a:", stub=STUB)[0] == ["b"]


@pytest.mark.skipif(BASH is None or not CONSOLE_SCRIPT.exists(), reason="no bash or no console script")
def test_the_script_with_the_real_console_script(script):
    assert bash_complete(script, "fairrun tr")[0] == ["train"]
    assert bash_complete(script, "fairrun vae ")[0] == ["minority", "train"]


# --hydra-help

def test_hydra_help_lists_fairrun_s_launchers_and_completion(tmp_path):
    proc = run_fairrun_in_process("train", "--hydra-help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    launchers = [line for line in proc.stdout.splitlines() if line.startswith("hydra/launcher: ")]
    assert launchers == ["hydra/launcher: " + ", ".join(sorted(["basic", *conf_names("hydra", "launcher")]))]
    assert "hydra/job_logging: default, disabled, none, stdout" in proc.stdout
    assert "fairrun-train" not in proc.stdout
    assert 'eval "$(fairrun --completion bash)"' in proc.stdout


def test_fairrun_help_text_keeps_other_lines():
    from fairrun.commands.help import COMPLETION_FLAG_HELP, fairrun_help_text

    text = ("--multirun,-m : Run\n--shell-completion,-sc : Install:\n    eval x\n\n"
            "--config-path,-cp : Overrides\n"
            "hydra/launcher: basic, joblib, local_parallel, submitit_slurm, slurm\nhydra/output: default\n")
    assert fairrun_help_text(text) == ("--multirun,-m : Run\n" + COMPLETION_FLAG_HELP
                                       + "--config-path,-cp : Overrides\n"
                                       + "hydra/launcher: basic, local_parallel, slurm\n"
                                       + "hydra/output: default\n")


def test_a_plugin_launcher_still_works_by_name(tmp_path):
    proc = run_fairrun_in_process("train", "hydra/launcher=joblib", "--cfg", "hydra", "-p", "hydra.launcher",
                                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "_target_: hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher" in proc.stdout
