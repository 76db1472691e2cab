"""The bench's verdicts: budgets on values and ratios, extra conditions, and the last line."""

from loadtests.bench.report import Budget, Row, render_text, summary_line


def test_budgets_on_values_ratios_and_conditions() -> None:
    rows = [
        Row("lua", "us per call", 9.5, "us", budget=Budget("value", "<=", 10)),
        Row("http", "req/s", 140, "req/s", baseline=1000, budget=Budget("ratio", ">=", 0.15)),
        Row("sale", "units/s", 500, "units/s", baseline=50, budget=Budget("ratio", ">=", 10)),
        Row(
            "sale oversold",
            "units/s",
            500,
            "units/s",
            50,
            budget=Budget("ratio", ">=", 10),
            holds=False,
        ),
        Row("ws", "p99", 50.0, "ms", budget=Budget("value", "<", 50)),
        Row("batch", "cells/s", 1e5, "cells/s"),  # no budget: not counted
    ]
    assert [row.met for row in rows] == [True, False, True, False, False, None]
    assert summary_line(rows) == "bench: 2/5 budgets met"
    text = render_text(rows)
    assert "0.14x" in text and "NOT MET" in text and ">= 0.15x" in text and "< 50 ms" in text
