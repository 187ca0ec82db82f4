"""The suite's own errors: never an `AssertionError`, so no report takes them for a product defect.

A failed check of the system under test raises `AssertionError` (support/expect.py). Everything
else that stops a scenario is the harness's: a `HarnessError` (the suite could not measure: its
reference decoder failed, a spec names a request the suite does not know, no model fits the
budget), a `SuiteError` (bad input or an unusable environment, ending the run as one line), or
any other exception (an error in the suite's own code). Allure's categories and the verdict
(support/verdict.py) sort failures by this type, never by message text.
"""


class HarnessError(Exception):
    """The suite could not measure or check something: its own failure, not the product's."""


class SuiteError(HarnessError):
    """Bad input to the suite or an unusable environment.

    The message is a single line that names the problem and, where there is one, the fix.
    The hooks print it and end the run with a non-zero exit.
    """


class ConfigError(SuiteError):
    """A userdata key, value or path the suite cannot work with."""


class DiscoveryError(SuiteError):
    """`mlxk list --json` failed, timed out or answered something unusable."""
