# Burro's one image: the API (`burro serve`, the default) and the worker (`burro worker`).
# Two stages: uv builds the locked virtualenv, the runtime gets only the virtualenv.
# The local trainer's image is the same with its extra (torch and the CUDA libraries, ~6 GB):
#   docker build --build-arg BURRO_EXTRAS="--extra trainer" -t burro-trainer .

FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
ARG BURRO_EXTRAS=""
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project $BURRO_EXTRAS
COPY burro ./burro
COPY service ./service
COPY workers ./workers
COPY sandbox ./sandbox
COPY trainer ./trainer
RUN uv sync --locked --no-dev --no-editable $BURRO_EXTRAS

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin burro \
    && mkdir -p /data \
    && chown burro:burro /data
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    BURRO_DATA_DIR=/data \
    BURRO_LOG_JSON=true
WORKDIR /app
# Dataset bytes live here; the API writes them and the workers read them.
VOLUME ["/data"]
USER burro
EXPOSE 8000
CMD ["burro", "serve", "--host", "0.0.0.0", "--port", "8000"]
