# syntax=docker/dockerfile:1
# The service image: `docker compose up -d --build` builds it (see docs/operations.md).

# --- build: resolve the locked dependencies into a virtual environment -------------------
FROM python:3.13-slim AS builder

# uv from PyPI, like the README's `pip install uv`; pinned so that builds are repeatable.
RUN pip install --no-cache-dir uv==0.13.9

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.13

WORKDIR /app
# Dependencies first, in their own layer: it is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --group migrations --no-install-project
COPY . .
# `migrations` adds ruff, which alembic.ini runs on each revision that `alembic revision` writes.
RUN uv sync --locked --no-dev --group migrations

# --- runtime: the code and its environment, no build tools, not root ---------------------
FROM python:3.13-slim

# A fixed, numeric id: Kubernetes' runAsUser (deploy/kubernetes) and hadolint's DL3066 both
# need the number, which a name may not resolve to on the host.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home app

WORKDIR /app
# alembic.ini and migrations/ come along, so `alembic upgrade head` works inside the container.
COPY --from=builder --chown=app:app /app /app

ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1

USER 10001:10001
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2)"]

CMD ["backoffice", "serve", "--host", "0.0.0.0", "--port", "8000"]
