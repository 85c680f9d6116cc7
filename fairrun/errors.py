"""User-facing errors: raised for bad input and reported as one paragraph with exit code 2."""


class FairrunError(Exception):
    """A mistake in the user's input (config value, missing file, bad path).

    The CLI prints the message as one paragraph, without a traceback, and exits with code 2.
    """


class ConfigError(FairrunError):
    """An invalid configuration value: the message names the key, the value and what is accepted."""
