"""Benchmarks: ours against the peer library on the same data, in one process.

Each domain module ``benchmarks/<name>.py`` defines ``run(quick: bool = False) -> list[Case]``.
``python -m benchmarks [name ...] [--quick] [--json FILE]`` runs them and prints one table.
Timing lives here, never in pass/fail tests.
"""
