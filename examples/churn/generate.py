"""Writes landing/subscriptions.csv: eight weeks of a subscription business's export, the example
of "your own data" in the README (and the data of tests/integration/test_own_data.py).

It holds what real exports hold: a flag written True/False and integer plan codes that the config
names categorical, region codes read as floats (some are missing), a 0.0/1.0 target, and sign-up
times without a zone. From week 7 a price rise moves the fees and the plan mix, and new customers
with short tenures arrive: the loop should see drift there.

    python examples/churn/generate.py
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

START = datetime(2026, 3, 2)  # a Monday
WEEKS, ROWS_PER_DAY, SHIFT_WEEK = 8, 100, 7


def export(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = 7 * WEEKS
    rows = days * ROWS_PER_DAY
    seconds = np.sort(rng.integers(0, days * 86_400, rows))
    after = seconds >= (SHIFT_WEEK - 1) * 7 * 86_400
    frame = pd.DataFrame(
        {
            "customer": [f"C{i:06d}" for i in range(rows)],
            "signed_up": [(START + timedelta(seconds=int(s))).strftime("%Y-%m-%d %H:%M:%S") for s in seconds],
            "tenure_months": np.where(after, rng.integers(1, 18, rows), rng.integers(1, 72, rows)),
            "monthly_fee": (rng.gamma(4.0, 12.0, rows) * np.where(after, 1.6, 1.0)).round(2),
            "has_partner": rng.random(rows) < 0.45,
            "plan": np.where(
                after, rng.choice([1, 2, 3, 4], rows, p=[0.1, 0.2, 0.3, 0.4]), rng.choice([1, 2, 3, 4], rows, p=[0.4, 0.3, 0.2, 0.1])
            ),
            "region_code": rng.choice([10.0, 20.0, 30.0, np.nan], rows, p=[0.5, 0.3, 0.15, 0.05]),
        }
    )
    odds = -1.0 + 0.03 * frame.monthly_fee - 0.04 * frame.tenure_months - 0.8 * frame.has_partner + 0.3 * (frame.plan == 4)
    frame["churned"] = (rng.random(rows) < 1 / (1 + np.exp(-odds))).astype(float)
    return frame


if __name__ == "__main__":
    out = Path(__file__).with_name("landing") / "subscriptions.csv"
    out.parent.mkdir(exist_ok=True)
    export().to_csv(out, index=False)
    print(f"wrote {out}")
