"""Every user-facing exception, and the one-paragraph formatter that reports them (the bottom layer).

A :class:`FairrunError` is a mistake in the user's input: the CLI prints it as one paragraph (no
traceback) and exits with code 2. The other exceptions end a command in a defined way (Ctrl-C, a sweep with
failed jobs). Every other module may import this one; it imports nothing of fairrun.
"""
from __future__ import annotations

import textwrap


def paragraph(message: str) -> str:
    """``message`` as one paragraph wrapped at 100 columns; paths and overrides stay whole (no break inside a
    word or at its hyphens), so they can be copied and pasted."""
    return textwrap.fill(" ".join(str(message).split()), width=100, subsequent_indent="  ",
                         break_long_words=False, break_on_hyphens=False)


class FairrunError(Exception):
    """A mistake in the user's input (config value, missing file, bad path).

    The CLI prints the message as one paragraph, without a traceback, and exits with code 2.
    """


class ConfigError(FairrunError):
    """An invalid configuration value: the message names the key, the value and what is accepted."""


class NonFiniteLoss(FairrunError):
    """The training loss became NaN or infinite (reported like a user error: the cure is a setting)."""


class Interrupted(Exception):
    """Training stopped by Ctrl-C (SIGINT) or SIGTERM after saving ``checkpoints/last.pt``.

    ``exit_code`` follows the shell's convention, 128 + the signal's number: 130 for Ctrl-C, 143 for SIGTERM.
    """

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


class SweepFailed(SystemExit):
    """Exit code 1 at the end of a multirun in which some job did not finish (raised by the summary)."""
