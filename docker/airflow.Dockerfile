# syntax=docker/dockerfile:1
# driftloop image: the official Airflow slim image (core Airflow, its entrypoint, user `airflow`)
# plus driftloop's runtime and deploy requirements under the project lock, and the project code.
# Every airflow-* service of docker-compose.yaml and the mlflow service run it.
# Build context is the repository root (docker compose build does this):
#   docker build -f docker/airflow.Dockerfile -t driftloop-airflow:dev .
# What the context may hold is listed in docker/airflow.Dockerfile.dockerignore (an allow-list:
# docker/.env and local state never reach the builder).
#
# The tag is apache/airflow:slim-<airflow version>-python<python version>. Both versions must be
# those of requirements.lock (Airflow) and of the lock's resolution (Python 3.11):
# tests/unit/test_compose.py checks it.
FROM apache/airflow:slim-3.3.2-python3.11

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/opt/driftloop:/opt/driftloop/plugins \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/driftloop/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/driftloop/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    MLFLOW_DISABLE_TELEMETRY=true \
    GX_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    OMP_NUM_THREADS=1

# The official image installs Python packages as the `airflow` user (never as root), without
# pip's cache, with apache-airflow pinned to the image's own version so that nothing can move it.
# Runtime + deploy sets only, constrained by the full lock: no test tools in the image.
USER airflow
COPY requirements.txt requirements-deploy.txt requirements.lock /tmp/requirements/
RUN pip install --no-cache-dir \
        "apache-airflow==${AIRFLOW_VERSION}" \
        -r /tmp/requirements/requirements.txt \
        -r /tmp/requirements/requirements-deploy.txt \
        -c /tmp/requirements/requirements.lock

# Project code, owned by root: read-only for the `airflow` user that runs it.
COPY dags/ /opt/driftloop/dags/
COPY plugins/ /opt/driftloop/plugins/
COPY include/ /opt/driftloop/include/
# Start-up steps of docker-compose.yaml (mlflow server with basic auth, airflow-init).
COPY docker/compose_init.py /opt/driftloop/docker/compose_init.py

# The entrypoint and CMD of the official image are kept: `docker run IMAGE scheduler` runs
# `airflow scheduler`, `bash`/`python` run as given.
# 8080 api-server, 8793 worker log server, 8794 triggerer log server, 8974 scheduler health, 5000 mlflow
EXPOSE 8080 8793 8794 8974 5000
