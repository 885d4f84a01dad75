"""The local device benchmark: a few devices one after another and at once, and its percentile."""

from __future__ import annotations

import pytest

from jitr import bench_local
from jitr.bench_local import percentile

pytestmark = pytest.mark.workflow


def test_percentile_interpolates_between_ranks() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 3.0
    assert percentile(values, 100) == 5.0
    assert percentile(values, 25) == 2.0
    assert percentile(values, 95) == pytest.approx(4.8)
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile([7.0], 95) == 7.0
    assert percentile(list(map(float, range(1, 101))), 95) == pytest.approx(95.05)


@pytest.mark.parametrize("q", [-1, 101])
def test_percentile_refuses_a_rank_outside_0_to_100(q: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], q)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_devices_one_after_another_are_all_onboarded_and_timed() -> None:
    results = bench_local.first_connect_to_active(3, give_up=60)
    assert results["first_connect_devices"] == 3
    assert results["first_connect_not_onboarded"] == 0
    median, p95 = results["first_connect_to_active_median_s"], results["first_connect_to_active_p95_s"]
    assert 0 < median <= p95 <= results["first_connect_to_active_max_s"] < 60
    assert results["first_connect_attempts_median"] >= 2  # the first CONNECT is always refused
    executions = results["first_connect_executions"]
    assert executions.get("RUNNING", 0) == 0
    assert executions["SUCCEEDED"] >= 3


def test_devices_at_once_are_all_onboarded_and_counted() -> None:
    results = bench_local.crowd(5, give_up=90)
    assert (results["crowd_devices"], results["crowd_onboarded"], results["crowd_not_onboarded"]) == (5, 5, 0)
    assert results["crowd_seconds"] > 0
    assert results["crowd_onboarded_per_second"] == pytest.approx(5 / results["crowd_seconds"], rel=0.01)
    assert 2 <= results["crowd_attempts_per_device_median"] <= results["crowd_attempts_per_device_max"]
    assert results["crowd_connect_attempts"] >= 5 * 2
    refusals = sum(results["crowd_failed_attempts"].values())
    assert refusals == results["crowd_connect_attempts"] - 5  # every attempt but the accepted ones failed
    executions = results["crowd_executions"]
    assert executions.get("RUNNING", 0) == 0
    assert 5 <= executions["SUCCEEDED"] <= sum(executions.values())
    assert bench_local.failures({**results, "first_connect_not_onboarded": 0}) == []


def test_devices_never_onboarded_are_reported_as_failures() -> None:
    results = {
        "first_connect_devices": 100,
        "first_connect_not_onboarded": 0,
        "crowd_devices": 500,
        "crowd_not_onboarded": 7,
    }
    assert bench_local.failures(results) == ["7 of 500 devices connecting at once were never onboarded"]
