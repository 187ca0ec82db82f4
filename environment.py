"""behave hooks: thin; the work is done in support/hooks.py."""

from support.hooks import after_all, after_scenario, before_all, before_scenario  # noqa: F401
