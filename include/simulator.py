"""A deterministic stream of car-loan applications, for the demo and the tests.

Until ``drift_start`` the world is stable. From then on two things change at once, as in a rate
shock: the applicant mix moves (dearer cars, higher debt-to-income, lower credit scores, more
self-employed applicants) and the link between features and repayment changes (debt-to-income and
car value start to dominate, the credit score matters far less). A model trained before the shock
ranks the new applicants badly; one trained on the new rows recovers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

SALARY_RANGES = ["<30k", "30k-60k", "60k-100k", ">100k"]
REGIONS = ["north", "south", "east", "west"]
EMPLOYMENT = ["employed", "self_employed", "contract", "retired"]

NUMERIC = ["car_value", "debt_to_income_ratio", "credit_score", "age", "loan_term_months"]
CATEGORICAL = ["salary_range", "region", "employment"]


@dataclass(frozen=True)
class StreamSpec:
    """What the simulated stream looks like; every field has a demo default."""

    start: datetime
    days: int
    drift_start: datetime | None = None
    rows_per_day: int = 300
    seed: int = 7
    # how far the world moves from drift_start on: 1 is the full shock, 0.5 half of it
    drift_strength: float = 1.0
    # days over which it moves there in a straight line (0: at once, a step)
    drift_days: int = 0

    def mix(self, day: pd.Timestamp, drift: pd.Timestamp | None) -> float:
        """How far along the shock ``day`` is: 0 before ``drift_start``, then up to ``drift_strength``."""
        if drift is None or day < drift:
            return 0.0
        ramp = 1.0 if self.drift_days <= 0 else min(1.0, ((day - drift).days + 1) / self.drift_days)
        return self.drift_strength * ramp


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _between(before, after, mix: float):
    """``before`` at mix 0, ``after`` at mix 1 (exactly: the demo's stream does not change), and
    the straight line between them."""
    if mix == 0:
        return before
    if mix == 1:
        return after
    return (1 - mix) * np.asarray(before, dtype="float64") + mix * np.asarray(after, dtype="float64")


def _day(rng: np.random.Generator, day: pd.Timestamp, n: int, mix: float, first_id: int) -> pd.DataFrame:
    """One day's applications; ``mix`` 0 is the stable world, 1 the shocked one, and in between
    both the applicant mix and the repayment rule are that far along the way."""
    seconds = np.sort(rng.integers(0, 86400, n))
    timestamp = day + pd.to_timedelta(seconds, unit="s")
    employment = rng.choice(EMPLOYMENT, n, p=_between([0.65, 0.15, 0.12, 0.08], [0.40, 0.40, 0.15, 0.05], mix))
    salary = rng.choice(SALARY_RANGES, n, p=_between([0.20, 0.35, 0.30, 0.15], [0.35, 0.35, 0.20, 0.10], mix))
    car_value = rng.lognormal(_between(np.log(24000), np.log(34000), mix), 0.35, n)
    dti = np.clip(rng.normal(_between(0.33, 0.46, mix), _between(0.10, 0.12, mix), n), 0.01, 1.2)
    credit = np.clip(rng.normal(_between(680, 625, mix), _between(60, 65, mix), n), 300, 850)
    age = np.clip(rng.normal(41, 12, n), 18, 85).round()
    term = rng.choice([24, 36, 48, 60, 72], n)
    salary_effect = pd.Series(salary).map({"<30k": -0.6, "30k-60k": 0.0, "60k-100k": 0.4, ">100k": 0.7}).to_numpy()
    stable = 1.4 + 0.018 * (credit - 650) - 3.0 * (dti - 0.35) + salary_effect - 0.01 * (term - 48) + 0.3 * (employment == "retired")
    shocked = (
        0.9
        + 0.002 * (credit - 650)
        - 10.0 * (dti - 0.45)
        - 0.00008 * (car_value - 32000)
        - 0.9 * (employment == "self_employed")
        + 0.5 * salary_effect
    )
    logit = _between(stable, shocked, mix)
    repaid = (rng.random(n) < _sigmoid(logit)).astype("int64")
    return pd.DataFrame(
        {
            "id": np.arange(first_id, first_id + n, dtype="int64"),
            "timestamp": timestamp,
            "car_value": car_value.round(2),
            "debt_to_income_ratio": dti.round(4),
            "credit_score": credit.round(),
            "age": age,
            "loan_term_months": term.astype("int64"),
            "salary_range": salary,
            "region": rng.choice(REGIONS, n),
            "employment": employment,
            "repaid": repaid,
        }
    )


def simulate(spec: StreamSpec) -> pd.DataFrame:
    """Returns ``spec.days`` days of applications from ``spec.start`` (UTC), the same for the same spec.

    Each day draws from its own seeded generator, so a day's rows do not depend on how many days
    were simulated before it.
    """
    start = pd.Timestamp(spec.start).tz_localize("UTC") if pd.Timestamp(spec.start).tz is None else pd.Timestamp(spec.start)
    drift = None if spec.drift_start is None else pd.Timestamp(spec.drift_start)
    if drift is not None and drift.tz is None:
        drift = drift.tz_localize("UTC")
    frames = []
    for offset in range(spec.days):
        day = start.normalize() + pd.Timedelta(days=offset)
        rng = np.random.default_rng([spec.seed, offset])
        n = int(rng.poisson(spec.rows_per_day))
        first_id = offset * 100_000 + 1
        frames.append(_day(rng, day, n, spec.mix(day, drift), first_id))
    return pd.concat(frames, ignore_index=True)


def write_daily_batches(frame: pd.DataFrame, landing: str, timestamp: str = "timestamp", prefix: str = "applications") -> list[str]:
    """Writes one Parquet file per event day into ``landing`` (a path or fsspec URL).

    Returns the written paths. Existing files of the same day are overwritten with the same rows,
    so the demo can be replayed.
    """
    from include.storage import open_fs

    fs, root = open_fs(landing)
    fs.makedirs(root, exist_ok=True)
    written = []
    for day, rows in frame.groupby(frame[timestamp].dt.strftime("%Y-%m-%d"), sort=True):
        path = f"{root.rstrip('/')}/{prefix}_{day}.parquet"
        with fs.open(path, "wb") as handle:
            rows.to_parquet(handle, index=False)
        written.append(path)
    return written


def corrupt(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Returns a copy with the faults a broken upstream export makes: negative car values and
    missing debt-to-income ratios on a tenth of the rows. Used to show the gate and quarantine."""
    bad = frame.copy()
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(bad), size=max(1, len(bad) // 10), replace=False)
    bad.loc[bad.index[rows], "car_value"] = -1.0
    bad.loc[bad.index[rows[: len(rows) // 2]], "debt_to_income_ratio"] = np.nan
    return bad


def day_range(start: datetime, days: int) -> tuple[datetime, datetime]:
    """The half-open span ``[start, start + days)`` as timezone-aware datetimes."""
    s = pd.Timestamp(start)
    s = s.tz_localize("UTC") if s.tz is None else s
    return s.to_pydatetime(), (s + timedelta(days=days)).to_pydatetime()
