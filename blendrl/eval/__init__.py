"""Evaluation: reward-model metrics and calibration, best-of-n, HumanEval, judge-hack data, run comparison."""
