"""OpenAI's files and fine-tuning API, drop-in: views of Burro's datasets and jobs in OpenAI's
shapes, so code written for OpenAI changes only `base_url` and the key."""
