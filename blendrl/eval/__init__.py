"""Evaluation: reward-model metrics and calibration (later: best-of-n, the over-optimization lab, reports)."""
