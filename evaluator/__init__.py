"""Scoring engine of the MTME challenge: data preparation, metrics, prediction files, checkpoints.

This package has no web or database imports; `app/` and `baselines/` build on it.
"""
