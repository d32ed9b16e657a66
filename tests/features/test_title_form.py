"""Title-form features (issue 17): what each column counts, on titles written to trip them."""

import numpy as np
import pandas as pd

from smpp.features import schema
from smpp.features.table import title_form_features


def test_each_title_form_feature_counts_what_its_name_says():
    titles = pd.Series(
        [
            "My first [OC] photo!!",
            "WHY is this SO cute?",
            None,
            '2 cats 🐱 "best" 10/10',
            "(oc) we made it",
            "pics",
            "Mimic the OCean [serious question]",
            "Imagine this",  # "Im" inside a word is not first person
        ]
    )
    got = pd.DataFrame(title_form_features(titles))
    assert list(got.columns) == schema.TITLE_FORM_COLUMNS
    assert all(got[c].dtype == np.float32 for c in got)
    assert np.isfinite(got.to_numpy()).all()
    np.testing.assert_allclose(got["title_caps_ratio"][:2], [3 / 14, 5 / 15], rtol=1e-6)
    assert got["title_caps_ratio"][2] == 0 and got["title_caps_ratio"][5] == 0  # no title, no capitals
    assert got["title_all_caps_words"].tolist()[:2] == [1, 2]
    assert got["title_exclamations"].tolist()[:2] == [2, 0]
    assert got["title_question"].tolist() == [0, 1, 0, 0, 0, 0, 0, 0]
    assert got["title_digits_log"][3] == np.float32(np.log1p(5)) and got["title_digits_log"][0] == 0
    assert got["title_bracket_tag"].tolist() == [1, 0, 0, 0, 1, 0, 1, 0]
    assert got["title_oc_tag"].tolist() == [1, 0, 0, 0, 1, 0, 0, 0]  # "OCean" and "[serious question]" are not OC
    assert got["title_first_person"].tolist() == [1, 0, 0, 0, 1, 0, 0, 0]
    assert got["title_emoji"].tolist() == [0, 0, 0, 1, 0, 0, 0, 0]
    assert got["title_quote"].tolist() == [0, 0, 0, 1, 0, 0, 0, 0]


def test_title_form_columns_are_optional_tabular_inputs_of_the_model_and_the_gbm():
    from smpp.training.model import OPTIONAL_TABULAR_COLUMNS

    assert set(schema.TITLE_FORM_COLUMNS) <= set(OPTIONAL_TABULAR_COLUMNS)
