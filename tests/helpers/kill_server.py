"""A warm process that forks one ``fairrun train`` per request and lets it SIGKILL itself at an atomic rename.

test_kill_faults runs ~37 runs, each killed at one rename. A fresh interpreter per run spent ~3.5 s importing torch,
Hydra and torch's compiler stack (the first optimizer imports ``torch._dynamo``) before any work; here the imports
are done once and every run is a ``fork()`` of this process: a real, separate process that dies by SIGKILL and leaves
its lock and temporaries behind, exactly as before (:mod:`tests.helpers.kill_at_rename` counts the renames).

Protocol (one JSON object per line on stdin, one per line on stdout):
``{"kill_at": K, "when": "before"|"after", "log": PATH, "cwd": DIR, "args": [...]}`` ->
``{"returncode": -9 | 0 | N, "stderr": TEXT}``. The parent never runs a torch operation, so the child starts with
no thread pool to inherit.
"""
from __future__ import annotations

import json
import os
import signal
import sys


def warm_up() -> None:
    """Import what a run imports (torch, the CLI, an optimizer's ``torch._dynamo``) without running an op."""
    import torch

    import fairrun.cli  # noqa: F401
    import fairrun.config.store  # noqa: F401
    import fairrun.training  # noqa: F401

    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)  # imports torch._dynamo (no kernel runs)


def child(request: dict, err_path: str) -> None:
    """In the forked process: stdout/stderr to a file, the rename counter, then fairrun train (never returns)."""
    fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.chdir(request["cwd"])
    real_replace, count = os.replace, [0]
    kill_at, when, log_path = request["kill_at"], request["when"], request["log"]

    def replace(src, dst, *args, **kwargs):
        count[0] += 1
        with open(log_path, "a") as log:
            log.write(f"{count[0]}\t{dst}\n")
        if count[0] == kill_at and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst, *args, **kwargs)
        if count[0] == kill_at and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace
    code = 0
    try:
        from fairrun.cli import main

        sys.argv = ["fairrun", "train", *request["args"]]
        main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported through the exit code and the captured stderr
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    warm_up()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        err_path = request["log"] + ".stderr"
        pid = os.fork()
        if pid == 0:
            child(request, err_path)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        with open(err_path) as f:
            stderr = f.read()
        print(json.dumps({"returncode": code, "stderr": stderr}), flush=True)


if __name__ == "__main__":
    serve()
