"""Across seeds and architectures: statistics, the comparison table, the report and its figures."""
