"""Baselines that omnistock's benchmarks compare against (same semantics, another design)."""
