"""`burro model-server`: the model server of the local provider, one base model and its adapters.

It loads the base once (preparing a GGUF file into the shared cache on first use) and serves
every local job's adapter trained on it, found in the shared data directory by the job id in
the model's name (`RunResolver`). Burro's API proxies chat to it like to any OpenAI-compatible
upstream (`BURRO_LOCAL_URL`); it does no authentication of its own, so it listens on loopback
or a private network only.
"""

from __future__ import annotations

import structlog
import uvicorn

from service.jobs import local
from service.logging import configure_logging
from service.models import ModelInfo, ModelTable
from service.settings import Settings
from trainer.base_models import prepare
from trainer.serving.adapters import RunResolver
from trainer.serving.app import create_app
from trainer.serving.engine import Engine
from trainer.worker import base_model_spec

log = structlog.get_logger("burro.model_server")

__all__ = ["local_models", "serve"]


def local_models(table: ModelTable) -> list[ModelInfo]:
    """The model table's entries that Burro's trainers train (they name their weights)."""
    return [info for info in table if info.weights is not None]


def serve(settings: Settings, host: str, port: int, model: str | None = None) -> int:
    """Load `model` (default: the table's first local model) and serve it until stopped."""
    configure_logging(settings.log_level, settings.log_json)
    table = ModelTable.load(settings.models_file)
    candidates = local_models(table)
    info = table.get(model) if model else (candidates[0] if candidates else None)
    if info is None or info.weights is None:
        raise SystemExit(f"burro model-server: no local model {model or ''!r} in the model table")
    spec = base_model_spec(info)
    model_dir = prepare(spec, local.base_models_dir(settings))
    resolver = RunResolver(settings.data_dir / local.TRAINING_DIR, spec.name)
    engine = Engine(spec, model_dir, resolver)
    log.info("model_server.ready", model=spec.name, host=host, port=port)
    uvicorn.run(create_app(engine), host=host, port=port, log_level="warning")
    return 0
