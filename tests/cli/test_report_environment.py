"""fairrun report warns when one table mixes environments (package versions, CPU kernels, devices)."""
import json

import torch

from fairrun import rundir
from fairrun.core.environment import environment
from fairrun.report.collect import collect
from tests.cli.test_report import fake_results, write_job
from tests.conftest import run_fairrun


def job(root, num, seed, numpy_version=None, resumed_from=None):
    job_dir = root / str(num)
    write_job(job_dir, [f"seed={seed}"], fake_results(job_dir, "erm", 0.9, seed))
    env = environment(torch.device("cpu"))
    if numpy_version:
        env["packages"]["numpy"] = numpy_version
    segments = [env]
    if resumed_from:
        earlier = json.loads(json.dumps(env))
        earlier["packages"]["torch"] = resumed_from
        segments = [earlier, env]
    rundir.write_text(json.dumps({"segments": segments}), job_dir / rundir.ENVIRONMENT)


def test_one_environment_gives_no_warning(tmp_path):
    for num in range(2):
        job(tmp_path, num, num)
    coll = collect([tmp_path])
    assert coll.notes == [] and coll.results["env_torch"].nunique() == 1


def test_mixed_environments_are_named_with_their_run_counts(tmp_path):
    job(tmp_path, 0, 0)
    job(tmp_path, 1, 1)
    job(tmp_path, 2, 2, numpy_version="1.26.4", resumed_from="2.4.0")
    coll = collect([tmp_path])
    mixed = [n for n in coll.notes if "different environments" in n]
    assert len(mixed) == 1 and "numpy" in mixed[0] and "1.26.4 (1 run)" in mixed[0] and "(2 runs)" in mixed[0]
    assert any("resumed under another environment" in n and "2" in n for n in coll.notes)
    out = run_fairrun("report", str(tmp_path), "--out", str(tmp_path / "report"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "different environments: numpy" in " ".join(out.stdout.split())
    assert "different environments" in (tmp_path / "report" / "report.txt").read_text()


def test_runs_without_environment_json_are_reported_without_a_warning(tmp_path):
    for num in range(2):
        job_dir = tmp_path / str(num)
        write_job(job_dir, [f"seed={num}"], fake_results(job_dir, "erm", 0.9, num))
    coll = collect([tmp_path])
    assert coll.notes == [] and "env_torch" not in coll.results
