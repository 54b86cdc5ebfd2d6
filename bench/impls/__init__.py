"""Benchmark implementations: one file per framework and scenario, each run as its own process."""
