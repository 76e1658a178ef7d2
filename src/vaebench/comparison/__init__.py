"""Across seeds and architectures: statistics, the comparison table and the report."""
