# One image, several commands: `batchway api`, `batchway worker`, `batchway simulate`.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md worker.py ./
COPY api api
COPY workflows workflows
COPY activities activities
COPY batchway batchway
RUN pip install --no-cache-dir .
ENV BATCHWAY_DATA_DIR=/data
EXPOSE 8000
CMD ["batchway", "api", "--host", "0.0.0.0"]
