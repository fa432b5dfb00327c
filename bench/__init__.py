"""Benchmark suite: a pytest plugin that records measured-vs-estimated rows and writes reports."""
