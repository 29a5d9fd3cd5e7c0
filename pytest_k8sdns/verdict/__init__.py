"""Verdicts: a check's `expect`, the certification profile, and the upgrade gate."""
