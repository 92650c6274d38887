# The galleryflow image: the worker (`galleryflow run`) and the HTTP API (`galleryflow api`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY connectors ./connectors
COPY pipeline ./pipeline
RUN pip install . \
 && useradd --system --uid 10001 --home-dir /app galleryflow

USER galleryflow
EXPOSE 8000
CMD ["galleryflow", "run"]
