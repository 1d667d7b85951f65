"""Evaluations: a succeeded job's model against a baseline, example by example."""
