"""The suite's pytest fixtures, in one plugin (`tests/conftest.py` loads it).

Servers are real and on loopback: one redis-server and one sandbox for the session, Burro per
test (`serve_burro(settings)`, or `burro_url` for the test's `settings`). Domains change what
they need by overriding `settings` (or `sandbox_url`) in their own conftest; every fixture that
builds on them follows.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import shutil
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import msgspec
import openai
import pytest
import redis

from burro.redis_server import RedisServer
from burro.testing import serve_in_thread
from sandbox.config import SandboxConfig
from sandbox.state import Clock
from sandbox.testing import ManualClock, running_sandbox
from service.app import create_app
from service.ids import new_id
from service.logging import configure_logging
from service.settings import ProviderSettings, Settings
from tests.support.browser import Chromium, find_chromium
from tests.support.clients import TENANT_KEYS, tenant_client, tenant_sdk
from tests.support.data import BASE_MODEL, jsonl, training_examples
from tests.support.processes import WorkerProcesses
from tests.support.receivers import Handler, Receiver, answer, unlistened_port
from tests.support.sandboxes import ClockedSandbox, controls, fine_tune
from tests.support.store import RedisSession, register
from tests.support.workers import BurroWorker

# The session's sandbox: each fine-tuning phase lasts this long, a job about three times that.
SANDBOX_STEP_SECONDS = 0.1


def with_sandbox(settings: Settings, sandbox_url: str, **changes: Any) -> Settings:
    """`settings` with the sandbox at `sandbox_url` as the one, default provider."""
    provider = ProviderSettings(name="sandbox", base_url=sandbox_url, api_key="sk-sandbox")
    return msgspec.structs.replace(
        settings, providers=(provider,), default_provider="sandbox", **changes
    )


# --- Redis and settings ----------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _quiet_logs() -> None:
    """Burro's logs as in production (JSON), warnings and above: apps are made without
    configuring logs, so that a test can capture them at another level."""
    configure_logging("WARNING", json=True)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session, on a free port; never the machine's own."""
    server = RedisServer(data_dir=tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own (AOF on, everysec), for tests that stop or kill it: a module
    uses it by overriding `redis_url` with `private_redis.url`."""
    server = RedisServer(data_dir=tmp_path / "redis")
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    if redis_server.process is None:  # a test stopped it: bring it back
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def _data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("burro-data")


@pytest.fixture
def data_dir(_data_root: Path) -> Path:
    """Burro's data directory, emptied for this test. One path for the session, as there is
    one Redis: two tests' settings are then equal, and can share a server (`burro_url`)."""
    shutil.rmtree(_data_root)
    _data_root.mkdir()
    return _data_root


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisSession]:
    """The test's Redis from synchronous code, cheap enough to poll: `store(lambda r: …)`."""
    with RedisSession(redis_url) as session:
        yield session


@pytest.fixture
def settings(redis_url: str, data_dir: Path) -> Settings:
    """Burro's settings for this test: its Redis and data directory (both emptied), tenants
    'acme' and 'globex', private webhook addresses allowed (receivers are on loopback)."""
    return Settings(
        redis_url=redis_url,
        data_dir=data_dir,
        api_keys=TENANT_KEYS,
        webhook_allow_private=True,
        # Tests poll the API in loops; the limit itself is tested in test_limits.py.
        rate_limit=0,
        # A server outlives a test (burro_url), and so does an address it blocked for wrong
        # keys: every test comes from 127.0.0.1. The limit itself: test_auth_failures.py.
        auth_failures_per_minute=0,
        log_level="WARNING",
        log_json=True,
    )


# --- The sandbox -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    """One fast sandbox for the session (`…/v1`); its state outlives each test's Redis flush.

    A module that needs a sandbox of its own (a clock it moves, training refused) overrides
    this fixture with `start_sandbox(...)`."""
    with running_sandbox(SandboxConfig(step_seconds=SANDBOX_STEP_SECONDS)) as url:
        yield url


class StartSandbox(Protocol):
    def __call__(self, config: SandboxConfig = ..., *, clock: Clock | None = None) -> str: ...


@pytest.fixture
def start_sandbox() -> Iterator[StartSandbox]:
    """Start sandboxes of this test's own (any config, any clock); all stop when it ends."""
    with contextlib.ExitStack() as stack:

        def start(
            config: SandboxConfig = SandboxConfig(step_seconds=0.2),  # noqa: B008 - frozen
            *,
            clock: Clock | None = None,
        ) -> str:
            return stack.enter_context(running_sandbox(config, clock=clock))

        yield start


@pytest.fixture
def clocked_sandbox(start_sandbox: StartSandbox) -> ClockedSandbox:
    """A sandbox of this test's own whose clock moves only when the test says so (a module
    uses it by overriding `sandbox_url` with `clocked_sandbox.url`)."""
    clock = ManualClock()
    step = 10.0
    url = start_sandbox(SandboxConfig(step_seconds=step), clock=clock)
    return ClockedSandbox(url=url, clock=clock, step=step)


@pytest.fixture
def sandbox(sandbox_url: str) -> Iterator[httpx.Client]:
    """The sandbox's test controls (`/sandbox/faults`, `/sandbox/stats`), with no fault and
    no request counted when the test starts; faults left over are cleared at its end."""
    with controls(sandbox_url) as http:
        http.delete("/sandbox/faults").raise_for_status()
        http.delete("/sandbox/stats").raise_for_status()
        yield http
        http.delete("/sandbox/faults")


@pytest.fixture(scope="session")
def sandbox_model(sandbox_url: str) -> str:
    """A model fine-tuned on the session's sandbox once, on `data.training_examples()`: it
    answers those examples word for word."""
    return fine_tune(sandbox_url, jsonl(training_examples()), BASE_MODEL)


@pytest.fixture
def acme_job(redis_url: str, sandbox_model: str) -> str:
    """A succeeded job of 'acme' whose model is `sandbox_model`, registered as the jobs code
    registers it (nothing else of the job is stored)."""
    job_id = new_id("job_")
    register(redis_url, "acme", job_id, sandbox_model)
    return job_id


@pytest.fixture
def sandbox_settings(settings: Settings, sandbox_url: str) -> Settings:
    """The test's settings with the sandbox as the one, default provider."""
    return with_sandbox(settings, sandbox_url)


# --- Burro and its callers -------------------------------------------------------------------

ServeBurro = Callable[[Settings], str]


def _serve(stack: contextlib.ExitStack, settings: Settings) -> str:
    return stack.enter_context(serve_in_thread(create_app(settings, configure_logs=False)))


class BurroServers:
    """Burro servers kept running for the tests whose settings are equal. A test's state lives
    in Redis and the data directory, which every test empties first: a server carries nothing
    from one test to the next (but what it does in the background, see inference/conftest)."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._running: OrderedDict[Settings, tuple[str, contextlib.ExitStack]] = OrderedDict()

    def url(self, settings: Settings) -> str:
        """The base URL of a server for `settings`, started unless one runs already."""
        if settings in self._running:
            self._running.move_to_end(settings)
            return self._running[settings][0]
        stack = contextlib.ExitStack()
        self._running[settings] = (_serve(stack, settings), stack)
        while len(self._running) > self.keep:  # the least recently used one goes
            _, (_, oldest) = self._running.popitem(last=False)
            oldest.close()
        return self._running[settings][0]

    def close(self) -> None:
        while self._running:
            _, (_, stack) = self._running.popitem()
            stack.close()


@pytest.fixture(scope="session")
def burro_servers(redis_server: RedisServer) -> Iterator[BurroServers]:
    """The session's shared Burro servers (stopped before its Redis is)."""
    servers = BurroServers(keep=4)
    yield servers
    servers.close()


@pytest.fixture
def burro_url(burro_servers: BurroServers, settings: Settings) -> str:
    """Burro's API for the test's `settings`, on a loopback port (shared with the other tests
    whose settings are equal)."""
    return burro_servers.url(settings)


@pytest.fixture
def serve_burro() -> Iterator[ServeBurro]:
    """Serve Burro's API for other settings of one test (`serve_burro(changed)` is its base
    URL); every server stops when the test ends."""
    with contextlib.ExitStack() as stack:
        yield functools.partial(_serve, stack)


class MakeClient(Protocol):
    def __call__(
        self, tenant: str | None = "acme", *, base_url: str | None = None, key: str | None = None
    ) -> httpx.Client: ...


@pytest.fixture
def make_client(request: pytest.FixtureRequest) -> Iterator[MakeClient]:
    """HTTP clients of Burro as a tenant ('acme', 'globex'; None: no key; or a raw `key`), of
    the test's Burro unless `base_url` says another; all closed when the test ends."""
    with contextlib.ExitStack() as stack:

        def make(
            tenant: str | None = "acme", *, base_url: str | None = None, key: str | None = None
        ) -> httpx.Client:
            url = base_url if base_url is not None else request.getfixturevalue("burro_url")
            return stack.enter_context(tenant_client(url, tenant, key=key))

        yield make


@pytest.fixture
def client(make_client: MakeClient, burro_url: str) -> httpx.Client:
    """Burro's API as tenant 'acme'."""
    return make_client("acme", base_url=burro_url)


@pytest.fixture
def other_client(make_client: MakeClient, burro_url: str) -> httpx.Client:
    """Burro's API as tenant 'globex'."""
    return make_client("globex", base_url=burro_url)


@pytest.fixture
def anonymous(make_client: MakeClient, burro_url: str) -> httpx.Client:
    """Burro's API without a key."""
    return make_client(None, base_url=burro_url)


@pytest.fixture
def sdk(burro_url: str) -> Iterator[openai.OpenAI]:
    """The official openai SDK pointed at Burro, as tenant 'acme'."""
    with tenant_sdk(burro_url, "acme") as client:
        yield client


@pytest.fixture
def other_sdk(burro_url: str) -> Iterator[openai.OpenAI]:
    """The official openai SDK pointed at Burro, as tenant 'globex'."""
    with tenant_sdk(burro_url, "globex") as client:
        yield client


# --- Workers ---------------------------------------------------------------------------------


class MakeWorker(Protocol):
    def __call__(self, custom: Settings | None = None, **kwargs: Any) -> BurroWorker: ...


@pytest.fixture
def worker(settings: Settings) -> Iterator[MakeWorker]:
    """Build arq workers with production's functions, for the test's `settings` unless given
    others (`worker()`, `worker(other, burst=False, keep_result=…, **knobs)`: see
    `support.workers.BurroWorker`); every one still running is stopped when the test ends."""
    made: list[BurroWorker] = []

    def create(custom: Settings | None = None, **kwargs: Any) -> BurroWorker:
        made.append(BurroWorker(custom or settings, **kwargs))
        return made[-1]

    yield create
    errors = []
    for one in made:
        try:
            one.stop()
        except BaseException as exc:  # noqa: BLE001 - stop them all, then report
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def running_worker(worker: MakeWorker) -> BurroWorker:
    """A worker running in the background for the whole test (stopped at its end)."""
    return worker(burst=False).start()


SpawnWorker = Callable[..., Any]


@pytest.fixture
def spawn_worker(settings: Settings) -> Iterator[SpawnWorker]:
    """Start `burro worker` child processes (`spawn_worker(settings=None, function_timeout=…,
    stderr=…, **env)`: see `support.processes`); all are stopped when the test ends."""
    processes = WorkerProcesses()

    def spawn(custom: Settings | None = None, **kwargs: Any) -> Any:
        return processes.spawn(custom or settings, **kwargs)

    yield spawn
    processes.stop_all()


# --- Webhook receivers -----------------------------------------------------------------------


class StartReceiver(Protocol):
    def __call__(self, handler: Handler = ..., *, ssl_context: Any = None) -> Receiver: ...


@pytest.fixture
def start_receiver() -> Iterator[StartReceiver]:
    """Start receivers on 127.0.0.1 answering with `handler` (204 by default); each request is
    recorded before the handler runs. All are closed when the test ends."""
    started: list[Receiver] = []

    def start(handler: Handler = answer(204), *, ssl_context: Any = None) -> Receiver:  # noqa: B008 - immutable
        started.append(Receiver(handler, ssl_context=ssl_context))
        return started[-1]

    yield start
    for one in started:
        one.close()


@pytest.fixture
def receiver(start_receiver: StartReceiver) -> Receiver:
    """A receiver that answers every request with 204."""
    return start_receiver()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: connecting to it is refused at once."""
    sock, port = unlistened_port()
    with sock:
        yield port


# --- Async tests and the browser -------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    """Headless Chromium, as `make browser` installs it; the browser tests skip without it."""
    binary = find_chromium()
    if binary is None:
        pytest.skip(
            "headless Chromium is not installed: the make target `make browser` installs "
            "Debian's chromium package (it needs root)"
        )
    return binary


class OpenChromium(Protocol):
    def __call__(self, *, width: int = ..., height: int = ...) -> Chromium: ...


@pytest.fixture
def open_chromium(chromium_binary: str, tmp_path: Path) -> Iterator[OpenChromium]:
    """Open headless Chromium, each with a fresh profile (`open_chromium()`, or with another
    window size); every one is killed, process group and all, when the test ends."""
    profiles = itertools.count(1)
    with contextlib.ExitStack() as stack:

        def open_one(*, width: int = 1200, height: int = 1400) -> Chromium:
            profile = tmp_path / f"chromium-profile-{next(profiles)}"
            return stack.enter_context(Chromium(chromium_binary, profile, width, height))

        yield open_one
