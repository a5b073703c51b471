# One image for the API and the workers. TORCH_INDEX picks the wheel: the CPU build for the API
# (it never imports torch, but the package depends on it), a CUDA build for GPU workers.
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    LB_DATA_DIR=/data

WORKDIR /srv/leaderboard
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY evaluator ./evaluator
COPY baselines ./baselines
COPY migrations ./migrations
# A plain install: the migrations ship in the distribution (the `migrations` package).
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /srv/leaderboard leaderboard \
    && mkdir -p /data && chown leaderboard /data

# The API runs unprivileged. The worker service overrides the user (see docker-compose.yml):
# the checkpoint sandbox drops to `nobody` itself after taking its namespaces.
USER leaderboard
EXPOSE 8000
CMD ["leaderboard", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-consumer"]
