"""What every test shares, written once: data builders (`data`), waiting on a condition
(`waiting`), Redis from synchronous tests (`store`), tenant clients (`clients`), the arq worker
(`workers`), `burro worker` processes (`processes`), webhook receivers (`receivers`), headless
Chromium (`browser`) and the pytest fixtures that put them together (`fixtures`)."""

from pathlib import Path

# The repository's root: the Makefile, pyproject.toml, openapi/, docker-compose.yml.
ROOT = Path(__file__).resolve().parents[2]
