"""The module-level ASGI app for servers: `uvicorn service.asgi:app`."""

from service.app import create_app
from service.settings import Settings

app = create_app(Settings.from_env())
