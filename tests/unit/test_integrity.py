"""Run-directory integrity: checksums on every file fairrun reads back, damaged and missing files, full
disks and file-size limits, read-only locations, and never unpickling a results file fairrun cannot vouch for.

One tiny run is trained in-process (module fixture); each test damages a copy of it.
"""
from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import pickle
import random
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_module

from fairrun import rundir
from fairrun.core.errors import FairrunError
from tests.conftest import TINY, compose_train, fairrun_env, run_fairrun
from tests.helpers.resume import assert_same_results

KINDS = ["truncate", "garble", "empty", "missing"]
SIDECARS = ["results.pkl", "results.json", "predictions.pkl", "run_config.yaml", "checkpoints/last.pt",
            "checkpoints/best.pt"]


def tiny_config(*extra: str):
    from fairrun.config import validate_run_config

    return validate_run_config(compose_train(TINY + list(extra)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run (in-process) and its results."""
    from fairrun.training import run_training

    run_dir = tmp_path_factory.mktemp("integrity") / "run"
    return run_dir, run_training(tiny_config(), run_dir)


@pytest.fixture
def run(trained, tmp_path):
    """A fresh copy of the trained run directory."""
    copy = tmp_path / "run"
    shutil.copytree(trained[0], copy)
    return copy


def side(path: Path) -> Path:
    """The checksum sidecar of ``path`` (spelled out here, so that these tests also run on older code)."""
    return path.with_name(path.name + ".sha256")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def damage(path: Path, kind: str) -> None:
    """Truncate to half, overwrite 64 bytes in the middle with random ones, empty, or delete ``path``."""
    data = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "garble":
        rng = random.Random(0)
        middle = len(data) // 2
        noise = bytes(rng.randrange(256) for _ in range(64))
        assert noise != data[middle:middle + 64]
        path.write_bytes(data[:middle] + noise + data[middle + 64:])
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()


def eval_config(run_dir: Path, *extra: str):
    with initialize_config_module(config_module="fairrun.conf", version_base="1.3"):
        return compose(config_name="eval", overrides=[f"run_dir={run_dir}", "gpu=cpu", *extra])


def run_eval(run_dir: Path):
    from fairrun.evaluation.rerun import run_eval as eval_

    return eval_(run_dir, eval_config(run_dir))


def unfinish(run_dir: Path) -> None:
    """Make ``run_dir`` an interrupted run that resumes from last.pt (saved after the last epoch)."""
    for name in ("done", "results.pkl", "results.json", "predictions.pkl"):
        for path in (run_dir / name, side(run_dir / name)):
            path.unlink(missing_ok=True)


def drop_checksums(run_dir: Path) -> None:
    """Make ``run_dir`` look written by an older fairrun: no sidecars."""
    for path in run_dir.rglob("*.sha256"):
        path.unlink()


def one_paragraph(text: str) -> bool:
    return "Traceback" not in text and "\n\n" not in text.strip()


def squash(text: str) -> str:
    """``text`` without whitespace: the CLI wraps its paragraphs (also at hyphens inside paths)."""
    return re.sub(r"\s+", "", text)


# -- A: checksums -----------------------------------------------------------------------------------
def test_every_file_fairrun_reads_back_has_a_matching_checksum(trained):
    run_dir, results = trained
    for name in SIDECARS:
        record = side(run_dir / name).read_text()
        assert record == f"{digest((run_dir / name).read_bytes())}  {Path(name).name}\n", name
    assert not (run_dir / "done.sha256").exists()
    # the safe twin holds exactly the table of results.pkl (dtypes, NaN, ints, strings)
    safe = rundir.read_results(run_dir / "results.pkl")
    pd.testing.assert_frame_equal(safe, pd.read_pickle(run_dir / "results.pkl"), check_exact=True)
    pd.testing.assert_frame_equal(rundir.read_results(run_dir / "results.pkl"), results, check_exact=True)


def test_sixty_four_random_bytes_in_best_pt_stop_fairrun_eval(run):
    damage(run / "checkpoints" / "best.pt", "garble")
    with pytest.raises(rundir.IntegrityError) as err:
        run_eval(run)
    message = str(err.value)
    assert f"{run / 'checkpoints' / 'best.pt'} is damaged" in message and "SHA-256" in message
    assert "resume=false" in message and "rewrite best.pt" in message
    assert not (run / "eval_results.pkl").exists()


def test_sixty_four_random_bytes_in_last_pt_stop_the_resume(run):
    from fairrun.training import run_training

    unfinish(run)
    damage(run / "checkpoints" / "last.pt", "garble")
    with pytest.raises(rundir.IntegrityError, match=r"last\.pt is damaged .*resume=false"):
        run_training(tiny_config(), run)
    assert not (run / "done").exists()


def test_the_cure_resume_false_starts_the_run_over(run, trained):
    from fairrun.training import run_training

    unfinish(run)
    damage(run / "checkpoints" / "last.pt", "garble")
    again = run_training(tiny_config("resume=false"), run)
    assert_same_results(again, trained[1])


def test_resume_false_removes_the_old_results_and_their_records_before_training(run, monkeypatch):
    """A run started over that fails before it finishes leaves no earlier results for eval or report."""
    import fairrun.training.run as train_module

    def fail(self, writer, stop):
        raise RuntimeError("stopped before finishing")

    monkeypatch.setattr(train_module.Trainer, "fit", fail)
    with pytest.raises(RuntimeError):
        train_module.run_training(tiny_config("resume=false"), run)
    for name in ("results.pkl", "results.json", "predictions.pkl", "done"):
        assert not (run / name).exists() and not (run / f"{name}.sha256").exists(), name


def test_temporaries_of_killed_writes_are_removed_by_the_next_launch(run):
    """A kill between mkstemp and the rename leaves .<name>.*.tmp; the next launch of the run cleans up."""
    from fairrun.training import run_training

    unfinish(run)
    orphans = [run / ".results.pkl.abc.tmp", run / "checkpoints" / ".last.pt.xyz.tmp"]
    for path in orphans:
        path.write_bytes(b"partial")
    run_training(tiny_config(), run)
    assert not any(path.exists() for path in orphans)


def test_files_of_older_runs_without_checksums_are_read_with_a_warning(run, caplog, trained):
    drop_checksums(run)
    with caplog.at_level("WARNING", logger="fairrun"):
        again = run_eval(run)
    assert "best.pt has no recorded checksum" in caplog.text
    assert "run_config.yaml has no recorded checksum" in caplog.text
    test = trained[1].set_index("split").loc["test"]
    assert again.set_index("split").loc["test", "accuracy"] == test["accuracy"]


def test_the_checksum_record_itself_damaged_is_named(run):
    side(run / "checkpoints" / "best.pt").write_text("garbage\n")
    with pytest.raises(rundir.IntegrityError, match=r"best\.pt\.sha256, the checksum record .* is damaged"):
        run_eval(run)


# -- B: each damage kind of each file ---------------------------------------------------------------
@pytest.mark.parametrize("checksum", [True, False], ids=["checksummed", "old-run"])
@pytest.mark.parametrize("kind", ["truncate", "garble", "empty"])
def test_damaged_last_pt_is_one_paragraph_naming_the_file_and_resume_false(run, kind, checksum):
    from fairrun.training import run_training

    unfinish(run)
    if not checksum:
        drop_checksums(run)
        if kind == "garble":
            # without a checksum, bytes inside a tensor cannot be told from good ones: garble the header
            path = run / "checkpoints" / "last.pt"
            path.write_bytes(bytes(64) + path.read_bytes()[64:])
    if checksum or kind != "garble":
        damage(run / "checkpoints" / "last.pt", kind)
    with pytest.raises(rundir.IntegrityError) as err:
        run_training(tiny_config(), run)
    message = str(err.value)
    assert str(run / "checkpoints" / "last.pt") in message and "resume=false" in message
    assert "weights_only" not in message  # never the unsafe advice torch gives


@pytest.mark.parametrize("checksum", [True, False], ids=["checksummed", "old-run"])
@pytest.mark.parametrize("kind", KINDS)
def test_damaged_or_missing_best_pt(run, kind, checksum):
    if not checksum:
        drop_checksums(run)
    damage(run / "checkpoints" / "best.pt", kind)
    if not checksum and kind == "garble":
        pytest.skip("64 bytes inside a tensor are only detectable with a checksum")
    with pytest.raises(FairrunError) as err:
        run_eval(run)
    message = str(err.value)
    assert "best.pt" in message and ("resume=false" in message or "is missing" in message)
    assert "weights_only" not in message


def test_damaged_best_pt_at_the_end_of_a_resumed_run(run):
    from fairrun.training import run_training

    unfinish(run)
    damage(run / "checkpoints" / "best.pt", "missing")
    with pytest.raises(rundir.IntegrityError, match=r"best\.pt is missing.*resume=false"):
        run_training(tiny_config(), run)


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_results_pkl_changes_nothing_fairrun_reads(run, kind, trained):
    """fairrun reads results.json: a damaged results.pkl breaks neither a relaunch nor fairrun eval."""
    from fairrun.training import run_training

    damage(run / "results.pkl", kind)
    if kind != "missing":
        assert_same_results(run_training(tiny_config(), run), trained[1])  # relaunch: shows the results
    run_eval(run)


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_results_json(run, kind, caplog):
    from fairrun.report.collect import collect
    from fairrun.training import run_training

    damage(run / "results.json", kind)
    with pytest.raises(rundir.IntegrityError) as err:
        run_training(tiny_config(), run)  # relaunch of a finished run
    assert "results.json" in str(err.value) and "resume=false" in str(err.value)
    with caplog.at_level("WARNING", logger="fairrun"):
        run_eval(run)  # the evaluation does not need results: the privacy columns stay NaN
    assert "privacy columns" in caplog.text and "results.json" in caplog.text
    jobs = collect([run]).jobs
    assert jobs["status"].tolist() == ["failed"] and "results.json" in jobs["error"].iat[0]


@pytest.mark.parametrize("checksum", [True, False], ids=["checksummed", "old-run"])
@pytest.mark.parametrize("kind", KINDS + ["invalid-yaml", "other-tool"])
def test_damaged_run_config_names_the_file(run, kind, checksum):
    from fairrun.training import run_training

    config = run / "run_config.yaml"
    if not checksum:
        drop_checksums(run)
    if kind == "invalid-yaml":
        config.write_text("seed: [0\nmodel: {\n")
    elif kind == "other-tool":
        config.write_text("lr: 0.1\nbatch_size: 32\n")
    else:
        damage(config, kind)
    for attempt in (lambda: run_eval(run), lambda: run_training(tiny_config(), run)):
        with pytest.raises(FairrunError) as err:
            attempt()
        assert "run_config.yaml" in str(err.value), str(err.value)
        assert "NoneType" not in str(err.value)


def test_cli_damaged_files_exit_2_with_one_paragraph(run, tmp_path):
    damage(run / "checkpoints" / "best.pt", "truncate")
    proc = run_fairrun("eval", f"run_dir={run}", "gpu=cpu", cwd=tmp_path)
    assert proc.returncode == 2 and one_paragraph(proc.stderr), proc.stderr[-3000:]
    assert "best.pt" in squash(proc.stderr) and "resume=false" in squash(proc.stderr)
    unfinish(run)
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    proc = run_fairrun("train", *TINY, f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 2 and one_paragraph(proc.stderr), proc.stderr[-3000:]
    assert "last.pt" in squash(proc.stderr) and "resume=false" in squash(proc.stderr)
    assert "last.pt" in (run / "error.txt").read_text()


# -- C: full disk, file-size limit ------------------------------------------------------------------
def test_file_size_limit_names_the_file_and_keeps_the_previous_version(tmp_path):
    script = textwrap.dedent(f"""
        import resource, torch
        from pathlib import Path
        from fairrun import rundir
        path = Path({str(tmp_path)!r}) / "checkpoints" / "last.pt"
        rundir.save_checkpoint({{"w": torch.zeros(10)}}, path)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
        try:
            rundir.save_checkpoint({{"w": torch.zeros(100000)}}, path)
        except rundir.WriteError as err:
            print(err)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=fairrun_env(),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"file-size limit was reached writing {tmp_path / 'checkpoints' / 'last.pt'}" in proc.stdout
    assert "previous version of the file is kept" in proc.stdout and "20000 bytes" in proc.stdout
    kept = rundir.load_checkpoint(tmp_path / "checkpoints" / "last.pt")  # intact and verified
    assert kept["w"].shape == (10,)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.endswith(".tmp")] == []


def test_cli_train_under_a_file_size_limit_says_so(tmp_path):
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))

    proc = subprocess.run([sys.executable, "-m", "fairrun.cli", "train", *TINY, "hydra.run.dir=run"],
                          cwd=tmp_path, env=fairrun_env(), capture_output=True, text=True, timeout=300,
                          preexec_fn=limit)
    assert proc.returncode == 2 and one_paragraph(proc.stderr), proc.stderr[-3000:]
    assert squash("file-size limit was reached writing") in squash(proc.stderr)
    assert "last.pt" in squash(proc.stderr) and "inline_container" not in proc.stderr


def test_disk_full_mid_run_keeps_last_pt_and_the_run_resumes(tmp_path, monkeypatch, trained):
    """ENOSPC from the kernel (/dev/full) on the second last.pt write: a clear error, last.pt of epoch 1
    intact (verified), and the resumed run ends with the results of an uninterrupted one."""
    import builtins

    from fairrun.training import run_training

    calls = {"last": 0}

    def full_disk_open(file, mode="r", *args, **kwargs):
        if "w" in mode and Path(file).name.startswith(".last.pt.") and ".sha256" not in Path(file).name:
            calls["last"] += 1
            if calls["last"] == 2:
                return builtins.open("/dev/full", mode, *args, **kwargs)
        return builtins.open(file, mode, *args, **kwargs)

    monkeypatch.setattr(rundir.atomic, "open", full_disk_open, raising=False)  # the module that writes
    run_dir = tmp_path / "run"
    with pytest.raises(rundir.WriteError) as err:
        run_training(tiny_config(), run_dir)
    last = run_dir / "checkpoints" / "last.pt"
    assert str(err.value).startswith(f"no space left on the device writing {last}")
    assert "previous version of the file is kept" in str(err.value)
    assert rundir.load_checkpoint(last)["loop"]["epoch"] == 1
    monkeypatch.undo()
    assert_same_results(run_training(tiny_config(), run_dir), trained[1])


# -- D: read-only locations, one bad job among many -------------------------------------------------
def _drop_dac_override():  # pragma: no cover (runs in the child)
    """As root, lose the power to write where permissions forbid it (CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH leave the bounding set, so the exec'd child never has them)."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (1, 2):
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_read_only(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fairrun.cli", *args], cwd=cwd, env=fairrun_env(),
                          capture_output=True, text=True, timeout=300, preexec_fn=_drop_dac_override)


@pytest.fixture
def read_only_run(run, tmp_path):
    """The run directory, read-only for the CLI subprocesses of :func:`run_read_only`."""
    run.chmod(0o555)
    probe = subprocess.run([sys.executable, "-c", f"open({str(run / 'probe')!r}, 'w')"], capture_output=True,
                           preexec_fn=_drop_dac_override)
    if probe.returncode == 0:
        run.chmod(0o755)
        pytest.skip("cannot make a read-only directory here (root without dropping CAP_DAC_OVERRIDE)")
    yield run
    run.chmod(0o755)


def test_report_on_a_read_only_run_dir_names_it_and_suggests_out(read_only_run, tmp_path):
    proc = run_read_only("report", str(read_only_run), cwd=tmp_path)
    assert proc.returncode == 2 and one_paragraph(proc.stderr), proc.stderr[-3000:]
    assert squash(f"cannot write the report into {read_only_run}") in squash(proc.stderr)
    assert "--out DIR" in proc.stderr
    proc = run_read_only("report", str(read_only_run), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "out" / "table.csv").is_file()


def test_eval_that_cannot_write_names_the_file(run, monkeypatch):
    """fairrun eval writes eval_results.pkl into the run directory: a refusal names it and the cure."""
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", kwargs.get("dir"))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(rundir.WriteError) as err:
        run_eval(run)
    assert str(err.value).startswith(f"cannot write {run / 'eval_results.pkl'}: Permission denied")
    assert "fairrun eval takes out_dir=DIR" in str(err.value)


def test_eval_of_a_read_only_run_dir_names_it_and_out_dir_writes_elsewhere(read_only_run, tmp_path):
    """A read-only run: eval refuses in one paragraph (it cannot lock the directory) and names out_dir=DIR;
    with out_dir it evaluates, writes only there, and reproduces the training-time test metrics."""
    before = sorted(p.name for p in read_only_run.rglob("*"))
    proc = run_read_only("eval", f"run_dir={read_only_run}", cwd=tmp_path)
    assert proc.returncode == 2 and one_paragraph(proc.stderr), proc.stderr[-3000:]
    assert str(read_only_run) in proc.stderr and "out_dir=DIR" in proc.stderr
    proc = run_read_only("eval", f"run_dir={read_only_run}", f"out_dir={tmp_path / 'ev'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in read_only_run.rglob("*")) == before
    again = pd.read_pickle(tmp_path / "ev" / "eval_results.pkl").set_index("split")
    trained = rundir.read_results(read_only_run / "results.pkl").set_index("split")
    assert again.loc["test", "accuracy"] == trained.loc["test", "accuracy"]


def test_eval_refuses_a_run_dir_another_command_is_writing(run, tmp_path):
    """fairrun eval takes the run directory's lock: beside a live writer (here this test process holds the
    lock) it refuses in one paragraph naming the holder and out_dir=DIR, and writes nothing."""
    from fairrun.rundir.lock import acquire

    lock = acquire(run, "run", "elsewhere")
    try:
        proc = run_fairrun("eval", f"run_dir={run}", "gpu=cpu", cwd=tmp_path)
    finally:
        lock.release()
    assert proc.returncode == 2 and one_paragraph(proc.stderr), proc.stderr[-3000:]
    assert "out_dir=DIR" in proc.stderr and str(os.getpid()) in proc.stderr
    assert not (run / "eval_results.pkl").exists()
    run_eval(run)  # free again
    assert (run / "eval_results.pkl").is_file()


def test_report_read_only_out_in_process(run, monkeypatch, capsys):
    """The same without permissions to drop: the probe file cannot be created."""
    import tempfile

    from fairrun.report.cli import report_main

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", kwargs.get("dir"))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    assert report_main([str(run)]) == 2
    err = capsys.readouterr().err
    assert squash(f"cannot write the report into {run}: Permission denied") in squash(err)
    assert not (run / "jobs.csv").exists()


def test_write_errors_name_the_file(tmp_path, monkeypatch):
    """Permission denied and a read-only file system while writing a run-directory file: WriteError."""
    import tempfile

    for code, words in ((errno.EACCES, "not writable by this user"), (errno.EROFS, "read-only file system")):
        def refuse(*args, code=code, **kwargs):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
        with pytest.raises(rundir.WriteError, match=words) as err:
            rundir.write_pickle(pd.DataFrame({"a": [1]}), tmp_path / "results.pkl")
        assert str(tmp_path / "results.json") in str(err.value) and "hydra.run.dir" in str(err.value)


def test_one_unreadable_results_among_twenty_jobs(run, tmp_path, capsys):
    from fairrun.report.cli import report_main

    sweep = tmp_path / "sweep"
    for job in range(20):
        job_dir = sweep / str(job)
        job_dir.mkdir(parents=True)
        for name in ("done", "results.pkl", "results.json", "run_config.yaml"):
            for path in (run / name, side(run / name)):
                if path.exists():
                    shutil.copy(path, job_dir / path.name)
    for name in ("results.pkl", "results.json"):  # the table fairrun reads, whichever it is
        if (sweep / "7" / name).exists():
            damage(sweep / "7" / name, "truncate")
    assert report_main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "finished 19, failed 1" in out and "7: " in out
    assert squash("results.json is damaged") in squash(out)
    jobs = pd.read_csv(tmp_path / "out" / "jobs.csv")
    assert jobs.set_index("job").loc[7, "status"] == "failed"
    assert (tmp_path / "out" / "table.csv").is_file()


# -- E: never unpickle what fairrun cannot vouch for ------------------------------------------------
class Exploit:
    """A pickle that touches a marker file when unpickled."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def plant(run: Path, marker: Path, twin: str, record: str) -> None:
    """Replace results.pkl by a crafted pickle; ``twin``: keep|delete results.json; ``record``: keep (now
    stale) or delete results.pkl's checksum sidecar."""
    (run / "results.pkl").write_bytes(pickle.dumps(Exploit(marker)))
    if twin == "delete":
        for path in (run / "results.json", side(run / "results.json")):
            path.unlink(missing_ok=True)
    if record == "delete":
        side(run / "results.pkl").unlink(missing_ok=True)


@pytest.mark.parametrize("twin, record", [("keep", "keep"), ("delete", "keep"), ("delete", "delete")])
def test_a_crafted_results_pkl_is_never_unpickled(run, tmp_path, twin, record, monkeypatch):
    from fairrun.report.collect import collect
    from fairrun.training import run_training
    from fairrun.evaluation.transfer import append_rows

    marker = tmp_path / "pwned"
    plant(run, marker, twin, record)
    attempts = {"relaunch": lambda: run_training(tiny_config(), run), "eval": lambda: run_eval(run),
                "report": lambda: collect([run]),
                "cross-dataset rows": lambda: append_rows(run, {}, [{"split": "x:test"}], [])}
    for name, attempt in attempts.items():
        try:
            attempt()
        except FairrunError as err:
            assert twin == "delete" and "results.pkl" in str(err), (name, str(err))
        assert not marker.exists(), name
    if twin == "delete":
        with pytest.raises(rundir.IntegrityError, match="will not unpickle|is damaged"):
            rundir.read_results(run / "results.pkl")


def test_cli_commands_never_run_a_crafted_pickle(run, tmp_path):
    marker = tmp_path / "pwned"
    plant(run, marker, "delete", "delete")
    for args in (("report", str(run), "--out", str(tmp_path / "out")), ("eval", f"run_dir={run}", "gpu=cpu"),
                 ("train", *TINY, f"hydra.run.dir={run}")):
        proc = run_fairrun(*args, cwd=tmp_path)
        assert not marker.exists(), args
        assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert squash("will not unpickle") in squash(proc.stderr)


def test_trusting_an_old_results_pkl_writes_its_safe_twin(run, trained):
    for path in (run / "results.json", side(run / "results.json"),
                 side(run / "results.pkl")):
        path.unlink()
    with pytest.raises(rundir.IntegrityError, match="python -m fairrun.rundir trust"):
        rundir.read_results(run / "results.pkl")
    proc = subprocess.run([sys.executable, "-m", "fairrun.rundir", "trust", str(run)], capture_output=True,
                          text=True, env=fairrun_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    pd.testing.assert_frame_equal(rundir.read_results(run / "results.pkl"), trained[1], check_exact=True)


# -- the safe format --------------------------------------------------------------------------------
def test_safe_format_round_trips_exactly():
    import numpy as np

    frame = pd.DataFrame({
        "f": [np.nan, np.inf, -np.inf, -0.0, 0.1 + 0.2, 5e-324],
        "i": [1, 2, 3, 4, 5, 2 ** 62], "b": [True, False] * 3,
        "o": [None, "a", 1.5, np.float64(2.5), True, 3],
        "s": pd.Series(["x", None, "y", "z", "w", "é"], dtype="str"),
        "c": pd.Series(["a", "b", None, "a", "b", "a"], dtype="category"),
        "f32": np.arange(6, dtype=np.float32) / 3,
    })
    data = rundir.frame_to_json(frame)
    back = rundir.frame_from_json(data, Path("results.json"))
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert [type(v) for v in back["o"]] == [type(v) for v in frame["o"]] and np.signbit(back["f"][3])
    assert b"NaN" in data and rundir.frame_to_json(pd.DataFrame({"l": [[1]]})) is None  # lists: no twin


def test_a_failure_that_cannot_be_recorded_in_error_txt_still_reports_cleanly(tmp_path, monkeypatch, capsys):
    """A full disk or read-only dir while writing error.txt: the message still reaches the user (single run:
    stderr, plus a note that error.txt could not be written; multirun job: the log line), no traceback."""
    import logging

    from fairrun.commands.common import report_user_error
    from fairrun.sweep import run_sweep_job

    real_write_text = Path.write_text

    def full_disk(self, *args, **kwargs):
        if self.name == "error.txt":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    report_user_error(FairrunError("trainer.lr=-1 is invalid"), tmp_path)
    err = capsys.readouterr().err
    assert "trainer.lr=-1 is invalid" in err and "could not also record it" in err and "No space left" in err

    def failing_job():
        raise FairrunError("dataset.root=/nowhere does not exist")

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("fairrun").addHandler(handler)
    try:
        run_sweep_job(failing_job, tmp_path / "job", 3, tmp_path)
    finally:
        logging.getLogger("fairrun").removeHandler(handler)
    text = " ".join(r.getMessage() for r in records)
    assert "job 3 failed" in text and "not recorded" in text and "/nowhere" in text
