"""Every run records the environment it ran in (environment.json), one entry per segment of a resumed run."""
import json
import logging
import re

import torch

from fairrun import rundir
from fairrun.core.environment import differences, environment, git_commit, key_values, results_columns
from fairrun.training import run_training


def test_environment_names_the_software_and_the_cpu_kernels():
    env = environment(torch.device("cpu"))
    assert env["packages"]["torch"] == torch.__version__.split("+")[0] or \
        env["packages"]["torch"].startswith(torch.__version__.split("+")[0])
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["threads"] == torch.get_num_threads() and env["device_name"] == "cpu"
    assert {"numpy", "pandas", "opacus", "fairlearn", "hydra-core", "fairrun"} <= set(env["packages"])
    assert set(env["deterministic"]) == {"algorithms", "cudnn_deterministic", "cudnn_benchmark"}
    json.dumps(env)  # plain JSON


def test_a_checkout_records_its_commit():
    found = git_commit()  # the tests run from the repository's checkout
    assert found is not None and re.fullmatch(r"[0-9a-f]{40}", found["commit"]) and isinstance(found["dirty"], bool)


def test_differences_name_the_key_fields_that_changed():
    a = environment(torch.device("cpu"))
    b = json.loads(json.dumps(a))
    assert differences(a, b) == []
    b["packages"]["numpy"], b["cpu_capability"] = "0.0.1", "DEFAULT"
    assert differences(a, b) == [f"numpy {a['packages']['numpy']} -> 0.0.1",
                                 f"cpu_capability {a['cpu_capability']} -> DEFAULT"]
    assert results_columns(b)["env_numpy"] == "0.0.1" and set(key_values(b)) == {c[4:] for c in results_columns(b)}


def test_a_run_writes_environment_json_and_a_resumed_run_adds_a_segment(tiny_cfg, tmp_path, caplog):
    results = run_training(tiny_cfg("trainer.epochs=1"), tmp_path)
    assert results["env_torch"].iloc[0] == torch.__version__.split("+")[0] and results["env_device_name"].iloc[0] == "cpu"
    assert results["env_cpu_capability"].iloc[0] == torch.backends.cpu.get_cpu_capability()
    text = rundir.read_text(tmp_path / rundir.ENVIRONMENT)  # checksummed
    segments = json.loads(text)["segments"]
    assert len(segments) == 1 and segments[0]["device_name"] == "cpu"
    # a resumed run (more epochs) under another environment: a second segment, and a warning in the log
    first = json.loads(text)
    first["segments"][0]["packages"]["numpy"] = "0.0.1"
    rundir.write_text(json.dumps(first), tmp_path / rundir.ENVIRONMENT)
    with caplog.at_level(logging.WARNING, logger="fairrun"):
        run_training(tiny_cfg("trainer.epochs=1", "resume=true"), tmp_path)  # finished: nothing is recorded
        assert len(json.loads(rundir.read_text(tmp_path / rundir.ENVIRONMENT))["segments"]) == 1
        (tmp_path / rundir.DONE).unlink()
        run_training(tiny_cfg("trainer.epochs=1"), tmp_path)  # resumes from last.pt (all epochs trained)
    segments = json.loads(rundir.read_text(tmp_path / rundir.ENVIRONMENT))["segments"]
    assert len(segments) == 2 and segments[0]["packages"]["numpy"] == "0.0.1"
    assert "numpy 0.0.1 ->" in caplog.text and "mix both" in caplog.text
