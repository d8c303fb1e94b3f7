"""A team's own export, not the demo's, through ingest, retrain and monitor under dag.test().

The CSV holds what real exports hold: a flag written ``True``/``False`` and integer codes that the
config names categorical, codes read as floats where one is missing, a ``0.0``/``1.0`` target, and
event times without a zone (read as UTC). Each is accepted as the config names it.
"""

from __future__ import annotations

import shutil
import sys
from datetime import datetime, timedelta

import pandas as pd
import pytest

from include.storage import Window
from tests.conftest import ROOT
from tests.integration.conftest import task_states

pytestmark = pytest.mark.integration

EXAMPLE = ROOT / "examples" / "churn"
START = datetime(2026, 3, 2)


@pytest.fixture(scope="module")
def project(project_factory):
    return project_factory(
        "own",
        data__timestamp="signed_up",
        data__id="customer",
        data__target="churned",
        data__labels=None,
        data__numeric=["tenure_months", "monthly_fee"],
        data__categorical=["has_partner", "plan", "region_code"],
    )


def test_an_export_with_flags_codes_float_targets_and_naive_times_goes_round_the_loop(project):
    shutil.copy(EXAMPLE / "landing" / "subscriptions.csv", project.landing / "subscriptions.csv")
    first = pd.read_csv(project.landing / "subscriptions.csv")
    days = pd.to_datetime(first.signed_up)
    history = int((days < "2026-03-30").sum())
    week5 = int(((days >= "2026-03-30") & (days < "2026-04-06")).sum())
    assert first.dtypes[["has_partner", "plan", "region_code", "churned"]].astype(str).tolist() == ["bool", "int64", "float64", "float64"]
    assert first.signed_up.iloc[0] == "2026-03-02 00:14:03"  # no zone

    dr = project.ingest(START, START + timedelta(days=28))
    assert dr.state == "success", task_states(dr)
    curated = project.storage.read_curated(Window(START, START + timedelta(days=28)))
    assert len(curated) == history

    dr = project.retrain(START + timedelta(days=28), window="28D")
    assert dr.state == "success", task_states(dr)

    dr = project.ingest(START + timedelta(days=28), START + timedelta(days=35))
    assert dr.state == "success", task_states(dr)
    dr = project.monitor(START + timedelta(days=28), START + timedelta(days=35))
    assert dr.state == "success", task_states(dr)
    (verdict,) = project.storage.verdicts()
    assert verdict["rows"] == week5 and verdict["drift"] is False
    assert {c: r["status"] for c, r in verdict["columns"].items()} == dict.fromkeys(project.settings.data.features, "ok")
    assert verdict["columns"]["has_partner"]["method"] == "jensenshannon" and verdict["columns"]["monthly_fee"]["method"] == "wasserstein"
    assert verdict["live_metric"] is not None and verdict["live_metric"] > 0.6
    assert verdict["target_drift"]["status"] == "ok"


def test_the_shipped_export_is_what_its_generator_writes():
    sys.path.insert(0, str(EXAMPLE))
    from generate import export

    shipped = pd.read_csv(EXAMPLE / "landing" / "subscriptions.csv")
    made = export()
    made.to_csv(buffer := __import__("io").StringIO(), index=False)
    buffer.seek(0)
    pd.testing.assert_frame_equal(shipped, pd.read_csv(buffer))
