"""The model server: base models and LoRA adapters behind an OpenAI-compatible HTTP API."""
