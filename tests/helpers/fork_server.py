"""A warm process that runs each ``fairrun`` command of the tests in a fork of itself (tests.conftest.run_fairrun).

A fresh interpreter per CLI test spent ~3.5 s importing torch, Hydra, pandas and torch's compiler stack (the first
optimizer imports ``torch._dynamo``) before any work, about a hundred times per suite. Here the imports are done
once per pytest worker and every command is a ``fork()``: a separate process with its own environment, working
directory, arguments, exit code and output files, as a fresh interpreter would have, minus the imports.

Protocol (one JSON object per line on stdin, one per line on stdout):
``{"args": [...], "cwd": DIR, "env": {...}, "timeout": S, "out": PATH}``, optionally with
``"kill_at": K, "when": "before"|"after", "log": PATH`` (fault injection, tests/cli/test_kill_faults.py: the child
counts its ``os.replace`` calls, logs each destination, and SIGKILLs itself just before or after the K-th) ->
``{"returncode": N (-signal when killed), "stdout": TEXT, "stderr": TEXT}``. The parent never runs a torch
operation, so a child starts with no thread pool to inherit; a child past its timeout is killed (SIGALRM), as
``subprocess.run(timeout=...)`` would.
"""
from __future__ import annotations

import json
import os
import sys


def warm_up() -> None:
    """Import what a command imports (torch, the CLI, the config store, training, reports, an optimizer's
    ``torch._dynamo``) without running an operation."""
    import torch

    import fairrun.cli  # noqa: F401
    import fairrun.config.store  # noqa: F401
    import fairrun.report.cli  # noqa: F401
    import fairrun.training  # noqa: F401  (imported for its import time, like the others)

    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)  # imports torch._dynamo (no kernel runs)


def kill_at_rename(kill_at: int, when: str, log_path: str) -> None:
    """Count this process's ``os.replace`` calls (every atomic write of fairrun ends in one), append each
    destination to ``log_path``, and SIGKILL the process just ``before`` or ``after`` the ``kill_at``-th (0: never)."""
    import signal

    real_replace, count = os.replace, [0]

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


def child(request: dict) -> None:
    """In the forked process: the request's environment, directory and output files, then ``fairrun ARGS``
    (never returns)."""
    import signal

    out = os.open(request["out"] + ".stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    err = os.open(request["out"] + ".stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.environ.clear()
    os.environ.update(request["env"])
    for entry in reversed([p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    os.chdir(request["cwd"])
    if request.get("kill_at") is not None:
        kill_at_rename(request["kill_at"], request["when"], request["log"])
    sys.path[0] = request["cwd"]  # as `python -m fairrun.cli` run there: a user's module beside it imports
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(max(1, int(request["timeout"])))
    code = 0
    try:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        from fairrun.cli import main

        sys.argv = ["fairrun", *request["args"]]
        main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # noqa: BLE001 - an uncaught exception: its traceback and exit code 1, as Python
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        import logging

        logging.shutdown()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve() -> None:
    warm_up()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(request)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        texts = {}
        for stream in ("stdout", "stderr"):
            path = request["out"] + "." + stream
            with open(path, errors="replace") as f:
                texts[stream] = f.read()
            os.unlink(path)
        print(json.dumps({"returncode": code, **texts}), flush=True)


if __name__ == "__main__":
    serve()
