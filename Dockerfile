FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY streamproc ./streamproc
RUN pip install --no-cache-dir '.[speed]'
# A user of its own, not root: the process needs no file it did not bring.
RUN useradd --system --uid 10001 --no-create-home streamproc
USER 10001
# /metrics, /healthz, /readyz, /status (and Clay callbacks)
EXPOSE 8080
ENTRYPOINT ["streamproc"]
CMD ["run"]
