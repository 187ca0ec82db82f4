"""The console formatter (behave.ini ``default_format = console``): pretty on a terminal, plain elsewhere.

behave adds its ``default_format`` on stdout whenever no ``-f`` is given on the command line,
also when behave.ini names formatters of its own; the suite's behave.ini therefore names only
Allure in ``format`` and makes this formatter the default. It is behave's ``pretty`` when its
stream is a terminal and behave's ``plain`` (each step once, with its status and any failure)
when it is not (``make e2e | tee log``, CI), where pretty's redrawn lines cannot be redrawn. Any
``-f`` on the command line replaces it (``-f pretty``, ``-f progress``). The suite's own
``mlx-e2e:`` lines and the end-of-run matrix go to stderr, not through a formatter.
"""

from __future__ import annotations

import sys

from behave.formatter.base import Formatter, StreamOpener
from behave.formatter.plain import PlainFormatter
from behave.formatter.pretty import PrettyFormatter

NAME = "console"


def is_terminal(opener: StreamOpener) -> bool:
    """Whether the formatter's stream is a terminal (a named file never is)."""
    stream = opener.stream if opener.stream is not None else (sys.stdout if opener.name in (None, "-") else None)
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def choose(opener: StreamOpener) -> type[Formatter]:
    """The formatter class the console is on this stream."""
    return PrettyFormatter if is_terminal(opener) else PlainFormatter


class ConsoleFormatter(Formatter):
    """behave ``pretty`` on a terminal, ``plain`` otherwise."""

    name = NAME
    description = "pretty on a terminal, plain when piped or in CI (each step printed once)"

    def __new__(cls, stream_opener, config):
        return choose(stream_opener)(stream_opener, config)  # not a ConsoleFormatter: no second __init__
