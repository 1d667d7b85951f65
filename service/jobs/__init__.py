"""Jobs: a caller's fine-tuning request, from `POST /v1/jobs` to a trained model."""
