"""behave's runner plus the live-run setup, done before any formatter sees a feature.

Discovery, RAM gating and the filling of the portfolio outlines happen here, between parsing
and running: also under --dry-run (behave skips every hook in a dry run, so a hook could not
show which models a live run covers), and bad input to the suite ends as behave's one-line
`ConfigError: ...` with a non-zero exit instead of a hook error. Live setup only happens when
a live scenario is selected: plain `behave` discovers nothing and loads no model.
"""

from behave.exception import ConfigError
from behave.runner import Runner

from . import hooks
from .errors import SuiteError


class PortfolioRunner(Runner):
    suite = None

    def run_model(self, features=None):
        try:
            self.suite = hooks.start_session(self.config, self.features)
        except SuiteError as e:
            raise ConfigError(str(e)) from None
        return super().run_model(features)
