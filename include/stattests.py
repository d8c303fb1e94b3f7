"""Evidently's drift methods as data: the name a config uses, Evidently's display name, the column
kinds it takes, its default threshold, and how its score decides drift.

No heavy import: the config validates ``monitoring.columns`` against this table while the
scheduler parses DAG files. ``tests/unit/test_drift.py`` checks every entry against Evidently's own
registry (names, kinds, thresholds) and each rule against Evidently's own ``drifted`` at a
threshold equal to the score, where ``<`` and ``<=`` part ways.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Literal

Kind = Literal["numerical", "categorical"]

# Evidently's automatic choice: references of at most this many rows (after nulls are dropped)
# get statistical tests, larger ones distances (evidently.legacy.calculations.stattests.registry)
SMALL_REFERENCE_ROWS = 1000

_RULES = {"<": operator.lt, "<=": operator.le, ">=": operator.ge, ">": operator.gt}


@dataclass(frozen=True)
class Method:
    name: str
    display: str
    kinds: tuple[Kind, ...]
    default_threshold: float
    # "p_value": a small score is drift; "distance": a large one
    score: Literal["p_value", "distance"]
    # drifted when ``score <rule> threshold``
    rule: Literal["<", "<=", ">=", ">"]

    def drifted(self, score: float, threshold: float) -> bool:
        return bool(_RULES[self.rule](score, threshold))


_N, _C = "numerical", "categorical"

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("anderson", "Anderson-Darling", (_N,), 0.1, "p_value", "<"),
        Method("chisquare", "chi-square p_value", (_C,), 0.05, "p_value", "<"),
        Method("cramer_von_mises", "Cramer-von Mises", (_N,), 0.1, "p_value", "<="),
        Method("ed", "Energy-distance", (_N,), 0.1, "distance", ">"),
        Method("empirical_mmd", "empirical_mmd", (_N,), 0.1, "p_value", "<"),
        Method("es", "Epps-Singleton", (_N,), 0.05, "p_value", "<"),
        Method("fisher_exact", "Fisher's Exact test", (_C,), 0.1, "p_value", "<"),
        Method("g_test", "g_test", (_C,), 0.1, "p_value", "<"),
        Method("hellinger", "Hellinger distance", (_C, _N), 0.1, "distance", ">="),
        Method("jensenshannon", "Jensen-Shannon distance", (_C, _N), 0.1, "distance", ">="),
        Method("kl_div", "Kullback-Leibler divergence", (_C, _N), 0.1, "distance", ">="),
        Method("ks", "K-S p_value", (_N,), 0.05, "p_value", "<="),
        Method("mannw", "Mann-Whitney U-rank test", (_N,), 0.05, "p_value", "<"),
        Method("psi", "PSI", (_C, _N), 0.1, "distance", ">="),
        Method("t_test", "t_test", (_N,), 0.05, "p_value", "<"),
        Method("TVD", "Total-Variation-Distance", (_C,), 0.1, "p_value", "<"),
        Method("wasserstein", "Wasserstein distance (normed)", (_N,), 0.1, "distance", ">="),
        Method("z", "Z-test p_value", (_C,), 0.05, "p_value", "<"),
    )
}


# for messages: the names a config may use
NAMES = ", ".join(sorted(METHODS, key=str.lower))


def default_method(kind: Kind, reference_rows: int, distinct_values: int) -> Method:
    """Evidently's automatic choice for a column (``_get_default_stattest``): ``reference_rows``
    counts the reference's non-null values, ``distinct_values`` the distinct values of both sides
    together. Chi-square and the Z-test also serve numerical columns of few values, as in Evidently.
    """
    few = kind == _C or distinct_values <= 5
    if reference_rows <= SMALL_REFERENCE_ROWS:
        if not few:
            return METHODS["ks"]
        return METHODS["chisquare"] if distinct_values > 2 else METHODS["z"]
    return METHODS["jensenshannon"] if few else METHODS["wasserstein"]


def check_method(name: str, kind: Kind, where: str) -> Method:
    """The method called ``name``, if it takes ``kind`` columns.

    Raises:
        ValueError: unknown method, or not one for this kind of column (names both, and the choices).
    """
    method = METHODS.get(name)
    if method is None:
        raise ValueError(f"{where}: unknown drift method {name!r}; Evidently's methods are {NAMES}")
    if kind not in method.kinds:
        fitting = sorted((m.name for m in METHODS.values() if kind in m.kinds), key=str.lower)
        raise ValueError(f"{where}: {name!r} does not take {kind} columns; methods that do: {', '.join(fitting)}")
    return method
