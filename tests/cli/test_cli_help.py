"""Every `--help` prints help and exits 0; a closed stdout (`fairrun --help | head -2`) ends quietly;
`fairrun data` / `fairrun prepare` without a dataset say so in one paragraph. The help and refusal checks run
in-process (the console script's code path; the subprocess tests below cover the real process and its pipes)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import TINY, TINY_CNN, fairrun_env, run_fairrun_in_process

HELPS = [
    ([], "fairrun train"),
    (["train"], "fairrun train"),
    (["eval"], "fairrun eval run_dir=PATH"),
    (["prepare"], "fairrun prepare dataset=NAME"),
    (["data"], "fairrun data dataset=NAME"),
    (["gan"], "fairrun gan train"),
    (["gan", "train"], "fairrun gan train"),
    (["vae"], "fairrun vae minority"),
    (["vae", "train"], "fairrun vae train"),
    (["vae", "minority"], "fairrun vae minority"),
    (["report"], "fairrun report"),
]


@pytest.mark.parametrize("words, expected", HELPS, ids=[" ".join(w) or "fairrun" for w, _ in HELPS])
def test_every_help_prints_help_and_exits_0(tmp_path, words, expected):
    proc = run_fairrun_in_process(*words, "--help", cwd=tmp_path)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr and "error" not in proc.stderr.lower(), proc.stderr[-3000:]
    assert expected in proc.stdout, proc.stdout[-3000:]
    assert not list(tmp_path.iterdir()), "help writes nothing"


@pytest.mark.parametrize("command", ["data", "prepare"])
def test_help_without_dataset_lists_the_keys_with_the_built_in_dataset(tmp_path, command):
    proc = run_fairrun_in_process(command, "--help", cwd=tmp_path)
    assert proc.returncode == 0 and "== Config ==" in proc.stdout and "name: synthetic" in proc.stdout
    assert "shown with dataset=synthetic" in " ".join(proc.stdout.split())
    proc = run_fairrun_in_process(command, "--help", "dataset=utkface", cwd=tmp_path)
    assert proc.returncode == 0 and "name: utkface" in proc.stdout and "shown with" not in proc.stdout


@pytest.mark.parametrize("args", [["data"], ["prepare", "dataset.root=/data/celeba"],
                                  ["data", "--cfg", "job"]])
def test_a_missing_dataset_is_one_paragraph(tmp_path, args):
    proc = run_fairrun_in_process(*args, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    message = " ".join(proc.stderr.split())
    assert message.startswith(f"fairrun: error: fairrun {args[0]} needs the dataset to read: dataset=NAME")
    assert "celeba, csv, fairface, imdb_wiki, synthetic, utkface" in message
    assert "\n\n" not in proc.stderr.strip()


def with_stdout_closed(args: list[str], cwd) -> tuple[int, str]:
    """Run fairrun with the reader of its stdout gone before it writes a byte (`fairrun --help | head -0`)."""
    proc = subprocess.Popen([sys.executable, "-m", "fairrun.cli", *args], cwd=cwd, env=fairrun_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    return proc.wait(timeout=300), err


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["train", "--cfg", "job"],
                                  ["vae", "--help"], ["data", "--help"]],
                         ids=["fairrun", "train", "cfg", "vae", "data"])
def test_closed_stdout_ends_quietly(tmp_path, args):
    code, err = with_stdout_closed(args, tmp_path)
    assert err == "", err[-3000:]
    assert code in (0, 141), code  # 141: as a shell reports a command ended by SIGPIPE


def test_a_run_whose_stdout_closes_still_finishes_quietly(tmp_path):
    tiny = [o for o in TINY if o not in TINY_CNN]
    code, err = with_stdout_closed(["train", *tiny, "model=logreg", "trainer.epochs=1", "eval.bootstrap=0",
                                    "hydra.run.dir=run"], tmp_path)
    assert code == 0, err[-3000:]
    assert "Traceback" not in err and "Logging error" not in err, err[-3000:]
    assert (tmp_path / "run" / "done").exists() and (tmp_path / "run" / "results.pkl").exists()
