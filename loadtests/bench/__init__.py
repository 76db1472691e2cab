"""``./scripts/bench``: every performance budget of DESIGN.md measured against its baseline in one
run, on servers the bench starts itself (see docs/benchmarks.md)."""
