# The gateway with the app beside it (config.py, rules/, functions/, migrations/). Production sets DATABASE_URL (and
# REDIS_URL, S3_*) and real secrets; without DATABASE_URL the embedded PostgreSQL lives in /data.
# The development .env is not baked in (see .dockerignore): pass secrets as environment variables, or try it
# locally with `docker run --env-file .env -p 8080:8080 hapta`. SIGTERM drains and exits within 10 s.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY hapta ./hapta
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 HAPTA_DATA_DIR=/data
COPY --from=build /install /usr/local
RUN useradd --create-home --uid 10001 hapta && mkdir -p /data /app && chown hapta:hapta /data
WORKDIR /app
COPY config.py ./
COPY rules ./rules
COPY functions ./functions
COPY migrations ./migrations
USER hapta
EXPOSE 8080
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2).status != 200)"
ENTRYPOINT ["hapta"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "--config", "/app/config.py"]
