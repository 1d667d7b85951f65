"""Distillation: a job whose training set is a teacher model's answers to a prompts dataset."""
