"""Benchmark scripts of sb3-reinforce (run as ``python -m benchmarks.<name>`` from the repository root)."""
