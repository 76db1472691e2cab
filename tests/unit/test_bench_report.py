"""The bench's verdicts: budgets on values and ratios, extra conditions, and the last line."""

from loadtests.bench.report import Budget, Row, carried, render_text, summary_line, with_section


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


def test_a_bench_run_keeps_the_lua_cost_profile_section() -> None:
    """docs/benchmarks.md is rewritten by every bench run; the section loadtests/lua_profile.py
    writes into it must survive that, and writing it again replaces it instead of adding one."""
    bench = "# Benchmarks\n\n| a | b |\n\n- **Lua cost**: note\n"
    profile = "## Lua cost profile\n\n| variant | us |\n| x | 1.0 |\n"
    written = with_section(bench, "## Lua cost profile", profile)
    assert written == bench + "\n" + profile
    again = with_section(written, "## Lua cost profile", profile.replace("1.0", "2.0"))
    assert again == bench + "\n" + profile.replace("1.0", "2.0")
    assert carried(again) == profile.replace("1.0", "2.0")
    assert carried(bench) == ""
    later = with_section(
        written + "\n## Other\n\ntext\n", "## Lua cost profile", "## Lua cost profile\n\nnew\n"
    )
    assert later == bench + "\n## Lua cost profile\n\nnew\n\n## Other\n\ntext\n"
