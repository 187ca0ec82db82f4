"""behave's runner, except that `before_all` also runs under --dry-run.

behave 1.3 skips every hook in a dry run, so the portfolio outlines would have no rows and a
dry run could not show which models a live run covers. Our `before_all` only discovers the
portfolio in a dry run (it starts no server and loads no model).
"""

from behave.runner import Runner


class PortfolioRunner(Runner):
    def should_run_hook(self, hook_name):
        if self.config.dry_run and hook_name == "before_all":
            return hook_name in self.hooks
        return super().should_run_hook(hook_name)
