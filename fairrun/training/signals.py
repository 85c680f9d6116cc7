"""Ctrl-C and SIGTERM during training: a flag the loop checks between steps, so it can save ``last.pt``."""
from __future__ import annotations

import logging
import signal
import sys
import threading
from contextlib import contextmanager

log = logging.getLogger("fairrun")


class StopFlag:
    """Ctrl-C (SIGINT) or SIGTERM sets a flag that the loop checks between steps; a second one aborts at once.

    SIGTERM is what ``kill``, ``docker stop``, systemd and SLURM (preemption, ``scancel``, the time limit,
    a grace period before SIGKILL) send: it saves ``checkpoints/last.pt`` like Ctrl-C, so a relaunch
    resumes exactly.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.signum = signal.SIGINT

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)

    @contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {signum: signal.getsignal(signum) for signum in self.SIGNALS}

        def handler(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested, self.signum = True, signum
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            print(f"\nfairrun: {name} received, saving checkpoints/last.pt after this step "
                  f"(a second one aborts without saving)", file=sys.stderr, flush=True)

        for signum in self.SIGNALS:
            signal.signal(signum, handler)
        try:
            yield self
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)
