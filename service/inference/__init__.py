"""Inference: the tenant's fine-tuned models, served through an OpenAI-compatible front door."""
