"""Everything the sandbox knows, in memory: one `SandboxState` per app."""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from sandbox.config import SandboxConfig
from sandbox.records import (
    DatasetCheck,
    StoredCheckpoint,
    StoredEvent,
    StoredFile,
    StoredJob,
    StoredPart,
    StoredUpload,
)

Clock = Callable[[], float]
_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """An id shaped like OpenAI's: a prefix and random letters and digits."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass
class FaultRule:
    """The next `remaining` requests matching method and path prefix wait `delay` seconds (or
    until the faults are cleared), then fail with `status` (or go through when it is None)."""

    path_prefix: str
    method: str | None
    status: int | None
    remaining: int
    delay: float
    retry_after: float


@dataclass
class FineTunedModel:
    """A model a sandbox job produced, with its training examples indexed for chat."""

    id: str
    created: int
    job_id: str
    exact: dict[str, str]
    prompts: list[str]
    replies: list[str]


@dataclass
class SandboxState:
    config: SandboxConfig
    clock: Clock = time.time
    files: dict[str, StoredFile] = field(default_factory=dict)
    uploads: dict[str, StoredUpload] = field(default_factory=dict)
    parts: dict[str, StoredPart] = field(default_factory=dict)
    jobs: dict[str, StoredJob] = field(default_factory=dict)
    events: dict[str, list[StoredEvent]] = field(default_factory=dict)
    checkpoints: dict[str, list[StoredCheckpoint]] = field(default_factory=dict)
    # Fine-tuned model name (and checkpoint names) -> the job that makes it.
    model_jobs: dict[str, str] = field(default_factory=dict)
    models: dict[str, FineTunedModel] = field(default_factory=dict)
    checks: dict[tuple[str, str], DatasetCheck] = field(default_factory=dict)
    faults: list[FaultRule] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    # Chat requests answered, by model and by their last user message: who was asked what,
    # how often.
    chat_prompts: dict[str, dict[str, int]] = field(default_factory=dict)
    # Jobs that just finished and whose webhook is still to be sent.
    outbox: list[str] = field(default_factory=list)
    # (wall time, job id): when an active job's phase ends; a heap, used only with webhooks.
    due: list[tuple[float, str]] = field(default_factory=list)
    # Set when the faults are cleared: requests a delay fault holds go on at once.
    _faults_cleared: anyio.Event | None = None

    def faults_cleared(self) -> anyio.Event:
        """The event that ends the delays of the faults injected so far (made in the server's
        event loop, on first use)."""
        if self._faults_cleared is None:
            self._faults_cleared = anyio.Event()
        return self._faults_cleared

    def clear_faults(self) -> None:
        """Remove every fault and let the requests their delays hold go on."""
        self.faults.clear()
        if self._faults_cleared is not None:
            self._faults_cleared.set()
            self._faults_cleared = None

    def now(self) -> float:
        return self.clock()

    def now_int(self) -> int:
        return int(self.clock())
