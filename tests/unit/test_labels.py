"""Later-arriving labels are checked: columns, values valid for the task, one label per id."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include import labels
from include.labels import LabelsError


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "labels"
    path.mkdir()
    return path


def read(folder, task="classification", ids=None):
    return labels.read_labels(str(folder), "id", "repaid", task, ids)


def test_a_file_without_the_target_column_names_file_column_and_rule(folder):
    """Before: KeyError "['repaid'] not in index" from the old Storage.read_labels."""
    pd.DataFrame({"id": [1, 2], "label": [0, 1]}).to_csv(folder / "b.csv", index=False)
    with pytest.raises(LabelsError, match=r"b\.csv: column 'repaid': rule labels_columns_present: missing column\(s\) \['repaid'\]") as err:
        read(folder, ids=[1, 2])
    assert err.value.rule == "labels_columns_present" and err.value.column == "repaid" and err.value.file.endswith("b.csv")
    assert "this one has ['id', 'label']" in str(err.value)


def test_a_file_without_the_id_column_is_refused_even_when_no_id_is_asked_for(folder):
    pd.DataFrame({"key": [1], "repaid": [0]}).to_parquet(folder / "a.parquet")
    with pytest.raises(LabelsError, match=r"a\.parquet: column 'id': rule labels_columns_present"):
        read(folder, ids=[99])


@pytest.mark.parametrize(
    ("task", "values", "rule", "numbers"),
    [
        ("classification", ["yes", "no", "yes"], "label_is_class", r"3 of 3 labels are not booleans or integer-valued"),
        ("classification", [1, 0.5, 0], "label_is_class", r"1 of 3 labels .*values \[0\.5\], ids \[2\]"),
        ("classification", [1, None, 0], "label_not_null", r"1 of 3 rows have no label; e\.g\. ids \[2\]"),
        ("regression", [1.5, "abc", 2.0], "label_is_number", r"1 of 3 labels are not finite numbers; e\.g\. values \['abc'\], ids \[2\]"),
        ("regression", [1.5, np.inf, 2.0], "label_is_number", r"1 of 3 labels are not finite numbers"),
    ],
)
def test_labels_must_be_valid_for_the_task(folder, task, values, rule, numbers):
    frame = pd.DataFrame({"id": [1, 2, 3], "repaid": values})
    frame.to_csv(folder / "labels.csv", index=False)
    with pytest.raises(LabelsError, match=rf"labels\.csv: column 'repaid': rule {rule}: {numbers}"):
        read(folder, task, ids=[1, 2, 3])


def test_conflicting_labels_for_one_id_across_files(folder):
    pd.DataFrame({"id": [1, 2, 3], "repaid": [1, 0, 1]}).to_csv(folder / "2026-01.csv", index=False)
    pd.DataFrame({"id": [3, 4], "repaid": [0, 1]}).to_parquet(folder / "2026-02.parquet")
    with pytest.raises(LabelsError, match=r"rule one_label_per_id: 1 id\(s\) have different labels") as err:
        read(folder, ids=[1, 2, 3, 4])
    message = str(err.value)
    assert "id 3: 1 in " in message and "2026-01.csv" in message and "0 in " in message and "2026-02.parquet" in message
    # the conflict concerns only id 3: intervals that do not hold it are not stopped by it
    assert read(folder, ids=[1, 2, 4]).set_index("id").repaid.to_dict() == {1: 1, 2: 0, 4: 1}


def test_the_same_label_delivered_twice_is_no_conflict(folder):
    pd.DataFrame({"id": [1, 2], "repaid": [1, 0]}).to_csv(folder / "a.csv", index=False)
    pd.DataFrame({"id": [2], "repaid": [0.0]}).to_csv(folder / "b.csv", index=False)
    found = read(folder, ids=[1, 2])
    assert found.set_index("id").repaid.to_dict() == {1: 1, 2: 0} and found.repaid.dtype == "int64"


def test_values_are_checked_on_the_rows_used(folder):
    pd.DataFrame({"id": [1, 2], "repaid": [1, "maybe"]}).to_csv(folder / "a.csv", index=False)
    assert read(folder, ids=[1]).repaid.tolist() == [1]
    with pytest.raises(LabelsError, match="label_is_class"):
        read(folder, ids=[1, 2])
    with pytest.raises(LabelsError, match="label_is_class"):
        read(folder)  # None: every row


def test_nullable_and_boolean_labels_are_accepted(folder):
    pd.DataFrame({"id": pd.array([1, 2], dtype="Int64"), "repaid": pd.array([True, False], dtype="boolean")}).to_parquet(
        folder / "a.parquet"
    )
    pd.DataFrame({"id": pd.array([3], dtype="Int64"), "repaid": pd.array([1], dtype="Int64")}).to_parquet(folder / "b.parquet")
    found = read(folder, ids=[1, 2, 3])
    assert found.set_index("id").repaid.to_dict() == {1: 1, 2: 0, 3: 1} and found.repaid.dtype == "int64"
    pd.DataFrame({"id": [4], "repaid": pd.array([2.5], dtype="Float64")}).to_parquet(folder / "c.parquet")
    assert read(folder, "regression", ids=[4]).repaid.tolist() == [2.5]


def test_no_folder_no_labels_and_hidden_files_are_skipped(folder):
    assert read(folder.parent / "nothing_yet", ids=[1]).empty
    assert labels.read_labels(None, "id", "repaid", "classification", [1]).empty
    (folder / ".partial.csv").write_text("id,wrong\n1,2\n")
    pd.DataFrame({"id": [1], "repaid": [1]}).to_csv(folder / "a.csv", index=False)
    assert labels.label_files(str(folder)) == [str(folder / "a.csv")]


def test_with_labels_fills_only_missing_labels_and_keeps_the_frame(folder, settings):
    pd.DataFrame({"id": [1, 2, 3], "repaid": [1, 1, 0]}).to_csv(folder / "a.csv", index=False)
    data = settings.data.model_copy(update={"labels": str(folder)})
    frame = pd.DataFrame({"id": [1, 2, 3, 4], "repaid": [0.0, np.nan, np.nan, np.nan]})
    copy = frame.copy()
    filled = labels.with_labels(frame, data, "classification")
    assert filled.repaid.tolist()[:3] == [0.0, 1.0, 0.0] and np.isnan(filled.repaid.iloc[3])
    pd.testing.assert_frame_equal(frame, copy)
    unlabelled = labels.with_labels(frame.drop(columns=["repaid"]), data, "classification")
    assert unlabelled.repaid.tolist()[:3] == [1, 1, 0] and list(unlabelled.id) == [1, 2, 3, 4]


def test_a_broken_labels_file_stops_with_labels_with_the_clear_error(folder, settings):
    pd.DataFrame({"id": [1]}).to_csv(folder / "late.csv", index=False)
    data = settings.data.model_copy(update={"labels": str(folder)})
    with pytest.raises(LabelsError, match=r"late\.csv: column 'repaid': rule labels_columns_present"):
        labels.with_labels(pd.DataFrame({"id": [1, 2]}), data, "classification")


def test_labels_errors_are_data_errors_that_no_retry_can_fix():
    from include.errors import DataError, DriftloopError

    assert issubclass(LabelsError, DataError) and issubclass(LabelsError, DriftloopError) and issubclass(LabelsError, ValueError)
