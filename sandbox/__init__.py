"""Burro's own OpenAI-compatible fine-tuning server: the upstream for tests, demos and benchmarks.

`create_app(SandboxConfig(...))` builds it; `serve(config)` runs it with uvicorn;
`sandbox.testing.running_sandbox(config)` runs it in a thread for tests.
"""

from sandbox.app import create_app, serve
from sandbox.config import SandboxConfig

__all__ = ["SandboxConfig", "create_app", "serve"]
