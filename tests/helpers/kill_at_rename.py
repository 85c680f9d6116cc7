"""Run ``fairrun train`` and SIGKILL it at one atomic rename: the fault-injection driver of test_kill_faults.

``python -m tests.helpers.kill_at_rename K WHEN LOG -- <fairrun train arguments>`` counts the ``os.replace`` calls of
the process (every atomic write of fairrun ends in one: results, checkpoints, their checksum sidecars, the run
config, the cache) and, at the K-th, kills the process with SIGKILL just ``before`` or ``after`` the rename
(K = 0: never). Each rename's destination is appended to LOG as it happens, so a run with K = 0 lists them all.
"""
from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    kill_at, when, log_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    assert when in ("before", "after") and sys.argv[4] == "--"
    real_replace = os.replace
    count = 0

    def replace(src, dst, *args, **kwargs):
        nonlocal count
        count += 1
        with open(log_path, "a") as log:
            log.write(f"{count}\t{dst}\n")
        if count == kill_at and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst, *args, **kwargs)
        if count == kill_at and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace
    from fairrun.cli import main as fairrun_main

    sys.argv = ["fairrun", "train", *sys.argv[5:]]
    fairrun_main()


if __name__ == "__main__":
    main()
