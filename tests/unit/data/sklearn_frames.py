"""scikit-learn's bundled datasets as DataFrames, shared by the data tests."""

from __future__ import annotations

import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine

LOADERS = {
    "breast_cancer": load_breast_cancer,
    "wine": load_wine,
    "digits": load_digits,
    "diabetes": load_diabetes,
}


def sklearn_frame(name: str) -> pd.DataFrame:
    """The dataset ``name`` (a key of LOADERS) with its target column."""
    df: pd.DataFrame = LOADERS[name](as_frame=True).frame
    return df
