"""fairrun's OmegaConf resolvers exist from start-up, in every command and every launcher's jobs.

`${unless_set:...}` (conf/method/dpsgd.yaml, dp_fedavg.yaml) used to be registered only when fairrun.config
was imported inside a job; hydra-joblib-launcher (`hydra/launcher=local_parallel`) restores the launching
process' resolvers before each job, so the second job of a worker failed with "Unsupported interpolation
type unless_set", and `--cfg job --resolve` crashed with a traceback.
"""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import TINY, TINY_CNN, fairrun_env, run_fairrun

FAST = [*(o for o in TINY if o not in TINY_CNN), "model=logreg", "trainer.epochs=1", "eval.bootstrap=0"]


def test_start_up_registers_every_resolver_without_importing_torch():
    code = ("import sys, fairrun.cli; from omegaconf import OmegaConf; "
            "print([n for n in ('fairrun_methods', 'fairrun_parallel_jobs', 'unless_set') "
            "if OmegaConf.has_resolver(n)]); "
            "print(sorted(m for m in ('torch', 'opacus', 'torchvision', 'scipy') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=fairrun_env(),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    registered, heavy = proc.stdout.splitlines()
    assert registered == "['fairrun_methods', 'fairrun_parallel_jobs', 'unless_set']"
    assert heavy == "[]"


@pytest.mark.parametrize("method", ["dpsgd", "dp_fedavg"])
def test_private_method_config_resolves(tmp_path, method):
    proc = run_fairrun("train", f"method={method}", "--cfg", "job", "--resolve", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "noise_multiplier: 1.0" in proc.stdout
    proc = run_fairrun("train", f"method={method}", "method.target_epsilon=8", "--cfg", "job", "--resolve",
                       "-p", "method", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "noise_multiplier: null" in proc.stdout and "target_epsilon: 8" in proc.stdout


@pytest.mark.parametrize("method, extra", [
    ("dpsgd", []),
    ("dp_fedavg", ["method.rounds=2", "method.rounds_per_epoch=1", "method.num_clients=10"]),
])
def test_private_methods_under_local_parallel(tmp_path, method, extra):
    # n_jobs=1: both jobs go through the joblib launcher one after the other, the second one after the
    # launcher restored the launching process' resolvers (what every worker does before each job)
    proc = run_fairrun("train", "-m", *FAST, f"method={method}", *extra, "seed=0,1",
                       "hydra/launcher=local_parallel", "hydra.launcher.n_jobs=1", "hydra.sweep.dir=sw",
                       cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    assert "2 job(s), 2 finished, 0 failed" in proc.stdout
    assert not list((tmp_path / "sw").glob("*/error.txt"))
    runs = [pd.read_pickle(tmp_path / "sw" / job / "results.pkl") for job in ("0", "1")]
    assert [run["seed"].iloc[0] for run in runs] == [0, 1]
    assert all(run["method"].iloc[0] == method and run["noise_multiplier"].iloc[0] == 1.0 for run in runs)
