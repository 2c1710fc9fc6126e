# tagwatch: one image for every Python process of the stack (api, monitor, init, alert-sink, replay).
#
#   docker build -t tagwatch:0.1.0 .
#   docker run --rm -p 8000:8000 tagwatch:0.1.0            # the API on SQLite under the image's TAGWATCH_HOME
#   docker run --rm tagwatch:0.1.0 --help                  # any other `tagwatch` subcommand
#
# Only features of the classic builder are used (no BuildKit cache mounts), so `docker-compose build` works either way.

# --- builder: a virtualenv with the pinned dependencies and tagwatch itself (not editable) ------------------------
FROM python:3.11-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# The dependencies first, in a layer of their own: it is rebuilt only when pyproject.toml or the pins change.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt

COPY README.md LICENSE ./
COPY tagwatch ./tagwatch
COPY service ./service
COPY monitor ./monitor
COPY retrain ./retrain
COPY commands ./commands
RUN pip install -c constraints.txt . \
    && pip check

# --- runtime ---------------------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm

LABEL org.opencontainers.image.title="tagwatch" \
      org.opencontainers.image.description="Tag suggestions for Stack Overflow questions, with drift monitoring and automatic retraining" \
      org.opencontainers.image.licenses="Apache-2.0"

# TAGWATCH_HOME holds models (artifacts), drift reports, spill files and, without a database URL, the SQLite files.
# MLFLOW_DISABLE_TELEMETRY: a registry client should not phone home (tagwatch sets it too; explicit here).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TAGWATCH_HOME=/var/lib/tagwatch \
    TAGWATCH_DATA_PATH=/opt/tagwatch/data/stackoverflow/questions.csv.gz \
    MLFLOW_DISABLE_TELEMETRY=true

RUN groupadd --system --gid 10001 tagwatch \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/tagwatch --no-create-home \
        --shell /usr/sbin/nologin tagwatch \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/tagwatch /var/lib/tagwatch-spill

COPY --from=builder /opt/venv /opt/venv
# The bundled questions (CC BY-SA: the notice travels with them). tagwatch.settings.BUNDLED_DATA resolves next to
# the installed package (site-packages/data/...): link that to the copy here, so the default works as well as
# TAGWATCH_DATA_PATH. The check fails the build if either path does not reach the file.
COPY data/NOTICE.md /opt/tagwatch/data/NOTICE.md
COPY data/stackoverflow/README.md data/stackoverflow/questions.csv.gz /opt/tagwatch/data/stackoverflow/
RUN ln -s /opt/tagwatch/data "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/data" \
    && python -c "from tagwatch.settings import BUNDLED_DATA, Settings; assert BUNDLED_DATA.is_file(), BUNDLED_DATA; assert Settings().data_path.is_file()" \
    && tagwatch --help > /dev/null

# A named volume mounted here starts with this directory's owner, so the non-root user can write to it (compose
# mounts its spill volume on /var/lib/tagwatch-spill, made above for the same reason; no VOLUME: a container that
# does not spill gets no anonymous volume).
VOLUME ["/var/lib/tagwatch"]
WORKDIR /var/lib/tagwatch
# Numeric, so that orchestrators checking "runAsNonRoot" can see it is not root without reading /etc/passwd.
USER 10001:10001

EXPOSE 8000
# The slim image has no curl: python's urllib fails (exit 1) on a refused connection or a non-2xx answer. Readiness
# (a model is loaded), not liveness: a replica without a model is not healthy and gets no traffic.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4)"]

ENTRYPOINT ["tagwatch"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
