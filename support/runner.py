"""behave's runner plus the live-run setup, done before any formatter sees a feature.

Discovery, RAM gating and the filling of the portfolio outlines happen here, between parsing
and running: also under --dry-run (behave skips every hook in a dry run, so a hook could not
show which models a live run covers), and bad input to the suite ends as behave's one-line
`ConfigError: ...` with a non-zero exit instead of a hook error. Live setup only happens when
a live scenario is selected: plain `behave` discovers nothing and loads no model.
"""

import os
import signal
import sys
from pathlib import Path

from behave.exception import ConfigError
from behave.runner import Runner

from . import outlines, session
from .errors import SuiteError
from .paths import REPORTS

LIVE_TAG = "live_e2e"


def say(line: str) -> None:
    """Progress a person can follow, above behave's own output."""
    print(f"mlx-e2e: {line}", file=sys.stderr, flush=True)


def live_selected(config, features) -> bool:
    """Whether the run selects any live scenario (plain `behave` selects none)."""
    expr = config.tag_expression
    return any(LIVE_TAG in s.effective_tags and (expr is None or expr.check(s.effective_tags))
               for f in features for s in f.walk_scenarios(with_outlines=True))


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def start_session(config, features):
    """The live run's session (None when no live scenario is selected); SuiteError on bad input."""
    if not live_selected(config, features):
        return None  # plain `behave`: no live scenario, no discovery, no model
    signal.signal(signal.SIGTERM, _raise_interrupt)  # SIGTERM ends servers like Ctrl-C does
    return session.start(config.userdata, features, say)


def redirect_reports(config) -> None:
    """With MLX_E2E_REPORTS set, behave.ini's report outputs (reports/...) go there too, so a run
    started by the suite's own tests never mixes into the project's reports."""
    if not os.environ.get("MLX_E2E_REPORTS"):
        return
    for opener in config.outputs:
        parts = Path(opener.name).parts if getattr(opener, "name", None) else ()
        if parts[:1] == ("reports",):
            opener.name = str(REPORTS.joinpath(*parts[1:]))
    if config.junit_directory and Path(config.junit_directory).parts[:1] == ("reports",):
        config.junit_directory = str(REPORTS.joinpath(*Path(config.junit_directory).parts[1:]))


class PortfolioRunner(Runner):
    suite = None

    def __init__(self, config, **kwargs):
        redirect_reports(config)
        super().__init__(config, **kwargs)

    def run_model(self, features=None):
        try:
            self.suite = start_session(self.config, self.features)
        except SuiteError as e:
            raise ConfigError(str(e)) from None
        if self.suite is not None:  # the rows are new: apply file.feature:LINE selection to them
            outlines.select_locations(self.features, self.feature_locations())
        return super().run_model(features)
