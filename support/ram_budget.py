"""RAM gating: a model runs only when its estimated need fits the budget.

The tiers are those of mlx-knife's own live suite: the share of physical RAM a run may
use grows with the machine (40% below 32 GB, 50% from 32, 60% from 64, 70% from 96).
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil

from .errors import ConfigError

GB = 1024**3
NEED_FACTOR = 1.2  # weights on disk plus runtime overhead
_TIERS = ((96, 0.70), (64, 0.60), (32, 0.50), (0, 0.40))  # (from total GB, ratio)


def ratio_for_total(total_gb: float) -> float:
    """The share of a machine's RAM a run may use."""
    return next(ratio for floor, ratio in _TIERS if total_gb >= floor)


@dataclass(frozen=True)
class Budget:
    """RAM a run may use; source is "tiers" or who set it (e.g. "-D ram_budget_gb")."""

    budget_gb: float
    total_gb: float
    ratio: float | None  # None when set rather than derived from the tiers
    source: str

    def describe(self) -> str:
        """E.g. "9.6 GB (40% of 24.0 GB)" or "6.0 GB (set by -D ram_budget_gb)"."""
        if self.ratio is None:
            return f"{self.budget_gb:.1f} GB (set by {self.source})"
        return f"{self.budget_gb:.1f} GB ({self.ratio:.0%} of {self.total_gb:.1f} GB)"


def system_budget(total_bytes: int | None = None, override_gb: float | None = None,
                  source_override: str = "-D ram_budget_gb") -> Budget:
    """This machine's budget (psutil's physical RAM unless total_bytes is given)."""
    total_gb = (psutil.virtual_memory().total if total_bytes is None else total_bytes) / GB
    if override_gb is None:
        ratio = ratio_for_total(total_gb)
        return Budget(total_gb * ratio, total_gb, ratio, "tiers")
    if not override_gb > 0:
        raise ConfigError(f"RAM budget {override_gb!r} from {source_override}: expected a number of GB > 0")
    return Budget(float(override_gb), total_gb, None, source_override)


def need_gb(size_bytes: int) -> float:
    """Estimated RAM a model needs: its size on disk times NEED_FACTOR."""
    return size_bytes * NEED_FACTOR / GB


def gate(size_bytes: int, budget: Budget) -> str | None:
    """None when the model fits the budget, else the reason it is skipped."""
    need = need_gb(size_bytes)
    if need <= budget.budget_gb:
        return None
    digits = 1  # -- more digits only where one would print "needs 6.0 GB, budget 6.0 GB"
    while digits < 3 and f"{need:.{digits}f}" == f"{budget.budget_gb:.{digits}f}":
        digits += 1
    return f"needs {need:.{digits}f} GB, budget {budget.describe()}"
