# PCare Frontdesk: the API, the webhook and the bot in one image. Production runs it with
# docker-compose.yml (PostgreSQL, Redis, `frontdesk serve --workers 4`); see docs/scaling.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Pinned dependencies first: this layer is rebuilt only when requirements.lock changes.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# The application itself (no dependencies left to resolve), compiled ahead: each worker starts faster.
COPY pyproject.toml README.md ./
COPY core ./core
COPY bot ./bot
COPY api ./api
RUN pip install --no-deps . \
    && python -m compileall -q /usr/local/lib/python3.11/site-packages \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /app frontdesk

USER frontdesk

# MALLOC_ARENA_MAX=2: glibc gives each thread that allocates an arena of its own (up to 8 per core, each
# up to 64 MB of address space, partly resident); two bound a worker's heap, at no measurable cost to
# a process whose work is one asyncio loop. See docs/performance.md (memory).
ENV API_HOST=0.0.0.0 \
    API_PORT=8000 \
    MALLOC_ARENA_MAX=2
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

# Migrates once, sets the webhook(s) once, then starts the workers (api.main:app_from_env).
CMD ["frontdesk", "serve", "--workers", "4"]
