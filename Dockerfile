# guardrail proxy: slim Python 3.11, CPU-only torch, non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    GUARDRAIL_HOST=0.0.0.0 GUARDRAIL_PORT=8080 \
    GUARDRAIL_DATABASE_URL=sqlite:////var/lib/guardrail/guardrail.db \
    GUARDRAIL_POLICY_DIR=/app/policies \
    GUARDRAIL_C2PA_DEV_PKI_DIR=/var/lib/guardrail/pki \
    GUARDRAIL_CORPUS_INDEX_DIR=/var/lib/guardrail/index

WORKDIR /app
# CPU wheel of torch first, so nothing pulls a CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY guardrail ./guardrail
COPY models ./models
COPY policies ./policies
# editable install: the shipped model heads in /app/models resolve next to the package
RUN pip install -e ".[postgres,redis]" \
 && useradd --system --uid 10001 --home /var/lib/guardrail --create-home guardrail
USER guardrail
EXPOSE 8080
# A container binds 0.0.0.0, so client keys are required: set GUARDRAIL_API_KEYS.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"
# One process migrates its SQLite schema itself. Many workers or nodes on PostgreSQL: run
# `docker run IMAGE guardrail db upgrade` once (deploy/docker-compose.yml's migrate service),
# then start them with GUARDRAIL_AUTO_MIGRATE=false and `guardrail serve --workers N`.
CMD ["guardrail", "serve"]
