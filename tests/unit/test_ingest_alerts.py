"""The alerts an ingest run's gate result calls for: late files, unplaced files, warnings."""

from include import alerts

GATE = {
    "kind": "gate",
    "rows": 10,
    "unplaced": [{"file": "/l/epoch.csv", "rows": 42, "error": "no readable timestamp: ...", "quarantine": "/q/unplaced/x"}],
    "late": [
        {
            "file": "/l/resent.csv",
            "windows": [{"start": "2026-01-05T00:00:00+00:00", "end": "2026-01-06T00:00:00+00:00", "rows": 20}],
            "rows": 20,
        }
    ],
    "warnings": ["column 'car_value': expect_column_values_to_be_between (...) failed; 3 of 10 rows"],
}


def test_a_gate_result_gives_one_alert_per_kind():
    sent = alerts.result_alerts("m", "ingest", "r1", "gate", GATE)
    assert [a.kind for a in sent] == ["unplaced", "late", "quality"]
    unplaced, late, warned = sent
    assert "/l/epoch.csv (42 rows)" in unplaced.text
    assert "[2026-01-05T00:00:00+00:00, 2026-01-06T00:00:00+00:00) 20 rows" in late.text and "Re-ingest" in late.text
    assert "car_value" in warned.text and "1 warning" in warned.title
    assert len({a.key for a in sent}) == 3  # each kept and delivered on its own


def test_a_quiet_gate_result_gives_no_alert():
    assert alerts.result_alerts("m", "ingest", "r1", "gate", {"kind": "gate", "rows": 3, "unplaced": [], "late": [], "warnings": []}) == []
