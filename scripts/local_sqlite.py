"""Connection arguments for the local demo's SQLite metadata DB (imported by every Airflow
process that ``scripts/services.py`` starts, via ``[database] sql_alchemy_connect_args``).

SQLite lets one writer in at a time. sqlite3 waits 5 s for a lock by default; on a 2-core machine
busy with the scheduler, the dag-processor, task processes and MLflow, a write (a DAG run the demo
triggers through the REST API) sometimes waited longer and the API answered 500 "Database error".
Postgres (docker-compose.yaml) has no such limit.
"""

CONNECT_ARGS = {"timeout": 60}
