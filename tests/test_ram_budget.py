"""RAM gating: the tiers, the override, the exact reason a model is skipped with."""

import psutil
import pytest

from support import ram_budget
from support.errors import ConfigError
from support.ram_budget import GB, Budget, gate, need_gb, ratio_for_total, system_budget


@pytest.mark.parametrize("total_gb, ratio", [
    (8, 0.40), (24, 0.40), (31.9, 0.40), (32, 0.50), (63.9, 0.50), (64, 0.60),
    (95.9, 0.60), (96, 0.70), (128, 0.70), (512, 0.70),
])
def test_ratio_tiers(total_gb, ratio):
    assert ratio_for_total(total_gb) == ratio


@pytest.mark.parametrize("total_gb, expected_budget", [
    (31.9, 31.9 * 0.40), (32, 16.0), (63.9, 63.9 * 0.50), (64, 38.4), (95.9, 95.9 * 0.60), (96, 67.2), (128, 89.6),
])
def test_system_budget_applies_the_tier_to_the_given_total(total_gb, expected_budget):
    budget = system_budget(total_bytes=int(total_gb * GB))
    assert budget.budget_gb == pytest.approx(expected_budget, rel=1e-9)
    assert budget.total_gb == pytest.approx(total_gb, rel=1e-9)
    assert budget.source == "tiers"


def test_system_budget_reads_this_machines_ram_with_psutil():
    budget = system_budget()
    assert budget.total_gb == pytest.approx(psutil.virtual_memory().total / GB)
    assert budget.budget_gb == pytest.approx(budget.total_gb * ratio_for_total(budget.total_gb))


def test_override_wins_over_the_tiers_and_says_who_set_it():
    budget = system_budget(total_bytes=24 * GB, override_gb=6.0)
    assert (budget.budget_gb, budget.total_gb, budget.ratio) == (6.0, 24.0, None)
    assert budget.describe() == "6.0 GB (set by -D ram_budget_gb)"
    demo = system_budget(total_bytes=24 * GB, override_gb=6, source_override="the demo portfolio manifest")
    assert demo.describe() == "6.0 GB (set by the demo portfolio manifest)"


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_a_budget_that_is_not_positive_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="expected a number of GB > 0"):
        system_budget(total_bytes=24 * GB, override_gb=bad)


def test_describe_from_the_tiers():
    assert system_budget(total_bytes=24 * GB).describe() == "9.6 GB (40% of 24.0 GB)"


def test_need_is_size_on_disk_times_the_factor():
    assert ram_budget.NEED_FACTOR == 1.2
    assert need_gb(6 * GB) == pytest.approx(7.2)


def test_a_model_that_fits_is_not_gated():
    budget = Budget(6.0, 24.0, 0.25, "tiers")
    assert gate(5 * GB, budget) is None  # needs exactly 6.0 GB
    assert gate(0, budget) is None


def test_exact_reason_with_the_tiers():
    assert gate(6 * GB, Budget(6.0, 24.0, 0.25, "tiers")) == "needs 7.2 GB, budget 6.0 GB (25% of 24.0 GB)"
    assert gate(10 * GB, system_budget(total_bytes=24 * GB)) == "needs 12.0 GB, budget 9.6 GB (40% of 24.0 GB)"


def test_exact_reason_with_the_override():
    budget = system_budget(total_bytes=24 * GB, override_gb=6.0)
    assert gate(6 * GB, budget) == "needs 7.2 GB, budget 6.0 GB (set by -D ram_budget_gb)"


def test_reason_never_shows_a_need_equal_to_the_budget():
    reason = gate(int(5.03 * GB), system_budget(total_bytes=24 * GB, override_gb=6.0))
    assert reason == "needs 6.04 GB, budget 6.0 GB (set by -D ram_budget_gb)"
