"""Ingest: the landing rows of a window through the gate, then into curated storage.

Two steps so the Airflow task that publishes (and emits the curated Asset event) runs only after
the gate passed: ``check_landing`` validates and stages, ``publish`` moves the staged rows into
curated partitions.
"""

from __future__ import annotations

import logging

from include import quality, registry
from include.storage import Storage, Window

log = logging.getLogger(__name__)


def check_landing(settings, window: Window) -> dict:
    """Reads the window's landing rows and runs the gate.

    A batch that fails is written to ``quarantine/<window>/`` with ``report.json`` and
    ``report.md``, and the error is raised again with the quarantine folder named. Landing files
    are only ever read.

    Returns:
        ``{"rows", "checks", "staged", "learned_from", "unplaced"}``; ``unplaced`` lists the landing
        files without a timestamp column first seen by this run, each quarantined as a copy
        (``Storage.quarantine_unplaced``).

    Raises:
        DataQualityError: the batch failed; nothing was staged or curated.
    """
    storage = Storage.from_settings(settings)
    frame = storage.read_landing(window)
    learned = registry.champion_profile(settings.name)
    # Landing files that belong to no window are marked as reported (quarantine_unplaced) only as
    # the task hands them over: in its result, or in the error of a rejected batch.
    try:
        report = quality.validate(frame, settings.data, window, learned, settings.quality, "ingest")
    except quality.DataQualityError as err:
        folder = storage.quarantine(frame, window, err.report, quality.report_markdown(err.report))
        unplaced = storage.quarantine_unplaced()
        also = "".join(f"\nalso: landing file {u['file']} belongs to no window ({u['error']}); see {u['quarantine']}" for u in unplaced)
        message = f"{err}\nthe batch ({len(frame)} rows) is quarantined in {folder}{also}"
        raise quality.DataQualityError(message, err.report, unplaced) from None
    staged = storage.write_parquet(frame, storage.staging_path(window))
    unplaced = storage.quarantine_unplaced()
    return {
        "rows": len(frame),
        "checks": report["checks"],
        "staged": staged,
        "learned_from": (learned or {}).get("window"),
        "unplaced": unplaced,
    }


def publish(settings, window: Window) -> dict:
    """Moves the window's staged rows into curated storage, replacing what a previous run of the
    same window wrote (no duplicates), and moves a quarantine entry the window may have had to
    ``quarantine/resolved/``.

    Returns:
        ``{"rows", "partitions"}``.
    """
    storage = Storage.from_settings(settings)
    staged = storage.staging_path(window)
    if not storage.exists(staged):
        raise FileNotFoundError(f"nothing staged for {window.as_dict()}: the gate task must pass first")
    frame = storage.read_parquet(staged)
    partitions = storage.write_curated(frame, window, settings.data.id)
    resolved = storage.resolve_quarantine(window)
    if resolved:
        log.info("window %s passed the gate this time; its quarantine entry is kept in %s", window.key, resolved)
    storage.fs.rm(staged)
    log.info("curated %d rows of %s into %d partitions", len(frame), window.key, len(partitions))
    return {"rows": len(frame), "partitions": len(partitions)}
