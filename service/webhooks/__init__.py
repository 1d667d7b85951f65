"""Outgoing webhooks: sign a job's event, check where it goes, deliver one attempt."""
