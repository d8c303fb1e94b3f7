# syntax=docker/dockerfile:1
# driftloop image: Airflow 3.3.2 + MLflow 3.17.2 + the project's code.
# Used by every airflow-* service and by the mlflow service of docker-compose.yaml.
# Build context is the repository root:
#   docker build -f docker/airflow.Dockerfile -t driftloop-airflow:dev .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIRFLOW_HOME=/opt/airflow \
    PYTHONPATH=/opt/driftloop \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/driftloop/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/driftloop/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    MLFLOW_DISABLE_TELEMETRY=true \
    GX_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1

# Unprivileged runtime user (same UID as the official Airflow image, group 0).
RUN useradd --uid 50000 --gid 0 --home-dir /opt/airflow --create-home --shell /bin/bash airflow

# Dependencies first, so that code changes do not invalidate this layer.
# requirements.lock is the full lock (pip freeze of a green venv): the build fails
# until it exists, on purpose, so that images are reproducible.
COPY requirements.txt requirements-deploy.txt requirements.lock /tmp/requirements/
# requirements-deploy.txt: the deployment-only extras (Celery provider, Postgres drivers, Redis
# client), pinned, with their transitive packages in requirements.lock (`make lock`).
RUN pip install --root-user-action=ignore \
        -r /tmp/requirements/requirements.txt \
        -r /tmp/requirements/requirements-deploy.txt \
        -c /tmp/requirements/requirements.lock

# Project code, owned by root and so read-only for the runtime user.
COPY dags/ /opt/driftloop/dags/
COPY plugins/ /opt/driftloop/plugins/
COPY include/ /opt/driftloop/include/

# Mount points of the named volumes. Creating them here, owned by the runtime
# user, makes Docker give a fresh named volume the same ownership.
RUN mkdir -p /opt/airflow/logs /opt/driftloop/.driftloop /mlflow/artifacts \
    && chown -R airflow:0 /opt/airflow /opt/driftloop/.driftloop /mlflow \
    && chmod -R g+rwX /opt/airflow /opt/driftloop/.driftloop /mlflow

# Relative paths in the driftloop YAML are read from the YAML's folder: include/demo.yaml's
# `storage: ../.driftloop/demo` is /opt/driftloop/.driftloop/demo, on the shared volume.
WORKDIR /opt/driftloop
USER airflow

# 8080 api-server, 8793 worker log server, 8974 scheduler health, 5000 mlflow
EXPOSE 8080 8793 8974 5000
CMD ["airflow", "version"]
