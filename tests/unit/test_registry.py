"""The MLflow adapter's pure parts (its MLflow calls are tested against a real server in tests/integration)."""


def test_mlflow_notes_on_stderr_go_to_the_log_at_info(caplog):
    """Airflow files a task's stderr as errors; MLflow's progress notes are not errors."""
    import logging
    import sys

    from include import registry

    with caplog.at_level(logging.INFO, logger="include.registry"), registry._mlflow_notes_to_log():
        print("Created version '2' of model 'car_loans'.", file=sys.stderr)
        sys.stderr.write("no newline at the end")
    assert [r.getMessage() for r in caplog.records] == [
        "mlflow: Created version '2' of model 'car_loans'.",
        "mlflow: no newline at the end",
    ]
    assert all(r.levelno == logging.INFO for r in caplog.records)
