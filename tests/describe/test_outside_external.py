"""cxrlib.describe.outside_text: the external check in words and as a table."""

from __future__ import annotations

import pytest
from saved_metrics import external
from saved_metrics import section as read_section

from cxrlib.core.metrics import MetricsSchemaError
from cxrlib.describe import outside_text


def describe_external(data: dict) -> list[str]:
    return outside_text.describe_external(read_section("external", data))


def external_table(data: dict):
    return outside_text.external_table(read_section("external", data))


def test_external_check_in_words_and_as_a_table():
    section = external({"normal": 159, "covid": 116}, {"normal": 47, "covid": 36}, confident=33)
    (line,) = describe_external(section)
    assert line.startswith("**OpenIST** (normal adults of a teaching website): of its 275 normal")
    # Its own class first, then the others most often given; a class never given is left out.
    assert "'normal' for **58%** (95% CI 52-64%) and 'covid' for **42%** (95% CI 36-48%)" in line
    assert "pneumonia" not in line
    assert "averaged over 9 views" in line and "highest thumbnail correlation 0.95" in line
    assert "12% got a wrong answer with a probability of 90% or more." in line  # 33 of 275
    assert line.endswith("The input check refused 1 of them.")
    assert "wrong answer" not in describe_external(external({"normal": 159, "covid": 116}))[0]
    table = external_table(section)
    assert list(table.index) == [
        ("OpenIST (normal)", "all"),
        ("OpenIST (normal)", "not in the segmenter's training"),
    ]
    assert table.loc[("OpenIST (normal)", "all"), "called covid"] == pytest.approx(
        116 / 275, abs=1e-4
    )
    assert table["n"].tolist() == [275, 83]
    assert describe_external({}) == [] and external_table({}).empty
    # A record without its counts is a clear error naming the key, not a dropped sentence.
    with pytest.raises(MetricsSchemaError, match=r"'external\.collections\.x\.label'"):
        describe_external({"collections": {"x": {"name": "X"}}})
