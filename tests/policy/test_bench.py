"""The policy row of ``make bench``: it measures both policies and says how fast each evaluation is."""

from __future__ import annotations

from jitr_core.policy import compile_policy

from jitr import bench_policy


def test_run_reports_evaluations_per_second_for_both_policies() -> None:
    results = bench_policy.run(evaluations=2_000)

    assert results["policy_evaluations_per_second_default"] > 0
    assert results["policy_evaluations_per_second_20_statements"] > 0
    # Both workloads mix allowed and denied requests, so neither path alone is measured.
    assert 0.3 <= results["policy_allowed_share_default"] <= 0.7
    assert 0.3 <= results["policy_allowed_share_20_statements"] <= 0.7


def test_the_generated_policy_has_twenty_statements_with_conditions() -> None:
    document = bench_policy.twenty_statement_policy()

    assert len(document["Statement"]) == 20
    assert sum("Condition" in s for s in document["Statement"]) >= 15
    compile_policy(document)


def test_rows_format_rates_and_microseconds() -> None:
    rows = bench_policy.rows(
        {"policy_evaluations_per_second_default": 500_000, "policy_evaluations_per_second_20_statements": 250_000}
    )

    assert rows == [
        ("policy evaluations per second, default device policy", "500,000 (2.0 µs each)"),
        ("policy evaluations per second, 20 statements with conditions", "250,000 (4.0 µs each)"),
    ]
