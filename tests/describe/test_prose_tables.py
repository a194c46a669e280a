"""cxrlib.describe.prose: figures written the same way on a page and in the downloaded card."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxrlib.describe.prose import column_formats, markdown_table


def test_column_formats_by_what_a_column_holds():
    df = pd.DataFrame(
        {"n": [3], "sensitivity": [0.5], "AUC": [0.9], "covid sensitivity": [0.1], "what": ["x"]}
    )
    formats = column_formats(df)
    assert formats == {
        "n": "{:,.0f}",
        "sensitivity": "{:.1%}",
        "AUC": "{:.3f}",
        "covid sensitivity": "{:.1%}",
    }


def test_markdown_table_formats_figures_and_dashes_what_is_missing():
    df = pd.DataFrame(
        {"n": [1200, 8], "accuracy": [0.9123, np.nan], "note": ["a|b", None]},
        index=pd.Index(["nih", "quex"], name="source"),
    )
    assert markdown_table(df).splitlines() == [
        "| source | n | accuracy | note |",
        "|---|---|---|---|",
        "| nih | 1,200 | 91.2% | a\\|b |",
        "| quex | 8 | – | – |",
    ]
    assert markdown_table(pd.DataFrame()) == ""


def test_markdown_table_spells_out_a_two_level_index():
    df = pd.DataFrame(
        {"n": [275, 200]},
        index=pd.MultiIndex.from_tuples(
            [("OpenIST (normal)", "all"), ("OpenIST (normal)", "unseen")],
            names=["collection", "images"],
        ),
    )
    lines = markdown_table(df).splitlines()
    assert lines[0] == "| collection | images | n |"
    assert lines[3] == "| OpenIST (normal) | unseen | 200 |"
