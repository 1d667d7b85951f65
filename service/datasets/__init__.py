"""Datasets: the first step of the flow, checking and pricing a JSONL file before it is stored."""
