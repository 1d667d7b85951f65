"""`python -m sandbox [--host H] [--port P]`: run the sandbox, configured from BURRO_SANDBOX_*."""

from __future__ import annotations

import argparse

from sandbox.app import serve
from sandbox.config import SandboxConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args(argv)
    serve(SandboxConfig.from_env(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
