"""Errors the suite reports to its user as one clear line (never a traceback)."""


class SuiteError(Exception):
    """Bad input to the suite or an unusable environment.

    The message is a single line that names the problem and, where there is one, the fix.
    The hooks print it and end the run with a non-zero exit.
    """


class ConfigError(SuiteError):
    """A userdata key, value or path the suite cannot work with."""


class DiscoveryError(SuiteError):
    """`mlxk list --json` failed, timed out or answered something unusable."""
