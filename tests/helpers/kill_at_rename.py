"""Run ``fairrun train`` in a fresh interpreter and SIGKILL it at one atomic rename (test_kill_faults' reference run).

``python -m tests.helpers.kill_at_rename K WHEN LOG -- <fairrun train arguments>`` counts the ``os.replace`` calls of
the process (every atomic write of fairrun ends in one: results, checkpoints, their checksum sidecars, the run
config, the cache) and, at the K-th, kills the process with SIGKILL just ``before`` or ``after`` the rename
(K = 0: never). Each rename's destination is appended to LOG as it happens, so a run with K = 0 lists them all.
The killed runs of the test are forks of the warm server (tests/helpers/fork_server.py), which uses the same hook.
"""
from __future__ import annotations

import sys

from tests.helpers.fork_server import kill_at_rename


def main() -> None:
    kill_at, when, log_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    assert when in ("before", "after") and sys.argv[4] == "--"
    kill_at_rename(kill_at, when, log_path)
    from fairrun.cli import main as fairrun_main

    sys.argv = ["fairrun", "train", *sys.argv[5:]]
    fairrun_main()


if __name__ == "__main__":
    main()
