#!/usr/bin/env bash
# Runs once, when the postgres service starts on an empty volume (/docker-entrypoint-initdb.d):
# the roles and databases of docker-compose.yaml, as the local cluster makes them.
#   role airflow  -> database airflow       (Airflow's metadata, Celery's results)
#   role mlflow   -> databases mlflow       (MLflow's tracking and registry store)
#                              mlflow_auth  (MLflow's users and permissions)
# The passwords come from docker/.env. Later starts keep them: to change one, see
# docs/compose.md ("Rotating secrets").
# No `set -u`: the postgres entrypoint sources this file when it is not executable.
set -eo pipefail

refuse() {  # the rule of docker/compose_init.py: no empty, placeholder or short secret
    local name=$1 value=$2 lowered
    lowered=$(printf '%s' "$value" | tr '[:upper:]' '[:lower:]')
    case "$lowered" in
        "" | admin | airflow | changeme | change-me | change_me | default | mlflow | password | postgres | root | secret | test)
            echo "postgres-init: $name is empty or a placeholder: generate docker/.env with \`make env\`" >&2
            exit 1 ;;
        *changeme* | *change-me* | *change_me* | *replace* | *placeholder* | *example*)
            echo "postgres-init: $name is a placeholder: generate docker/.env with \`make env\`" >&2
            exit 1 ;;
    esac
    if [ "${#value}" -lt 16 ]; then
        echo "postgres-init: $name is shorter than 16 characters: generate docker/.env with \`make env\`" >&2
        exit 1
    fi
}

refuse PG_SUPERUSER_PASSWORD "${POSTGRES_PASSWORD:-}"
refuse PG_AIRFLOW_PASSWORD "${PG_AIRFLOW_PASSWORD:-}"
refuse PG_MLFLOW_PASSWORD "${PG_MLFLOW_PASSWORD:-}"

# psql variables (:'name') quote the passwords: no SQL is built from them by hand.
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v airflow_pw="$PG_AIRFLOW_PASSWORD" -v mlflow_pw="$PG_MLFLOW_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_pw';
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_pw';
CREATE DATABASE airflow OWNER airflow;
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
SQL
echo "postgres-init: roles airflow, mlflow; databases airflow, mlflow, mlflow_auth"
