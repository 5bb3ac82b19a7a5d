"""What the readers share: the CSV error path, the numeric parser, id lists in messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from urbanflow.data.readers.common import first_listed, parse_numbers, read_csv, read_distances
from urbanflow.errors import DataError


def refuse(row: int, problem: str) -> DataError:
    return DataError(f"row {row}: {problem}")


def test_parse_numbers_reads_text_and_numeric_columns() -> None:
    text = pd.Series([" 1.5", "", None, "2e3 ", "-0"], dtype=object)
    np.testing.assert_array_equal(parse_numbers(text, refuse), [1.5, np.nan, np.nan, 2000.0, -0.0])
    numeric = pd.Series([1.0, np.nan, 3.0])
    np.testing.assert_array_equal(parse_numbers(numeric, refuse), [1.0, np.nan, 3.0])


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        (["1", "fast", "inf"], "row 1: not a number"),
        (["1", "-inf", "x"], "row 1: not a finite number"),
        (["1", "nan"], "row 1: not a number"),
        ([1.0, np.inf], "row 1: not a finite number"),
    ],
)
def test_parse_numbers_refuses_the_first_bad_cell(cells: list[object], message: str) -> None:
    with pytest.raises(DataError, match=f"^{message}$"):
        parse_numbers(pd.Series(cells), refuse)


def test_read_csv_errors_name_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("timestamp,a\n2024-01-01 08:05,1\n2024-01-01 08:10,1,2\n")
    with pytest.raises(
        DataError, match=r"ragged\.csv: speeds is not valid CSV \(.*line 3, saw 3\)"
    ):
        read_csv(path, "speeds")
    with pytest.raises(DataError, match=r"^ragged\.csv: not valid CSV \(.*line 3"):
        read_csv(path, label="ragged.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"^empty\.csv: empty; write a header row"):
        read_csv(tmp_path / "empty.csv", label="empty.csv")


def test_an_infinite_distance_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("from,to,distance\n1,2,10\n2,1,inf\n")
    with pytest.raises(DataError, match=r"d\.csv: line 3 has distance 'inf', not a finite number"):
        read_distances(path)


def test_first_listed_counts_the_rest() -> None:
    assert first_listed(["a", "b"]) == "a, b"
    assert first_listed(list("abcdefg")) == "a, b, c, d, e and 2 more"
    assert first_listed(list("abc"), limit=1) == "a and 2 more"
