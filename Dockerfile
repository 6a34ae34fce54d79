FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamproc ./streamproc
RUN pip install --no-cache-dir '.[speed]'
USER nobody
ENTRYPOINT []
