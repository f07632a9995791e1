# bulkphone in a container for scheduled runs (Kubernetes CronJob, CI, any scheduler).
#   docker build -t bulkphone .
#   docker run --rm -e BULKPHONE_ACCESS_TOKEN=... -v "$PWD/reports:/app/reports" bulkphone run jobs/my-job.toml --apply
# Secrets come from the environment or mounted files at run time; none is baked into the image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BULKPHONE_LOG_FORMAT=json

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bulkphone ./bulkphone
RUN pip install . && useradd --create-home --uid 10001 bulkphone
COPY --chown=bulkphone:bulkphone jobs ./jobs
COPY --chown=bulkphone:bulkphone sample_data ./sample_data
RUN mkdir -p /app/reports && chown bulkphone:bulkphone /app/reports

USER 10001
ENTRYPOINT ["bulkphone"]
CMD ["demo", "--data", "/app/sample_data", "--out", "/app/reports/demo"]
