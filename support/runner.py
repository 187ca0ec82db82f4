"""behave's runner plus the live-run setup, done before any formatter sees a feature.

Discovery, RAM gating and the filling of the portfolio outlines happen here, between parsing
and running: also under --dry-run (behave skips every hook in a dry run, so a hook could not
show which models a live run covers), and bad input to the suite ends as behave's one-line
`ConfigError: ...` with a non-zero exit instead of a hook error. Live setup only happens when
a live scenario is selected: plain `behave` discovers nothing and loads no model.
"""

import os
from pathlib import Path

from behave.exception import ConfigError
from behave.runner import Runner

from . import hooks, outlines
from .errors import SuiteError
from .paths import REPORTS


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
            self.suite = hooks.start_session(self.config, self.features)
        except SuiteError as e:
            raise ConfigError(str(e)) from None
        if self.suite is not None:  # the rows are new: apply file.feature:LINE selection to them
            outlines.select_locations(self.features, self.feature_locations())
        return super().run_model(features)
