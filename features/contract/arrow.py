"""Arrow helpers the contract's modules share: which dtypes are NumPy-backed, and values as Arrow text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.compute as pc

from features.contract.fields import STRING


def is_numpy_like(dtype: object) -> bool:
    """Whether a column of this dtype holds NumPy numbers, bools or timestamps (zoned or not)."""
    return (isinstance(dtype, np.dtype) and dtype.kind in "fiubM") or isinstance(dtype, pd.DatetimeTZDtype)


def arrow_text(values: pd.Series) -> pyarrow.Array:
    """Values as an Arrow large-string array, nulls kept, without a Python object per value."""
    if values.dtype == STRING:
        array = pyarrow.array(values.array)
    elif isinstance(values.dtype, pd.DatetimeTZDtype):
        # Arrow formats naive timestamps much faster than zoned ones: format in UTC, mark it Z.
        naive = pyarrow.array(values.dt.tz_convert("UTC").dt.tz_localize(None), from_pandas=True)
        large = pyarrow.large_string()
        return pc.binary_join_element_wise(naive.cast(large), pyarrow.scalar("Z", large), pyarrow.scalar("", large))
    elif is_numpy_like(values.dtype):
        # Arrow formats numbers and timestamps in C++; pandas' astype(str) goes value by value.
        array = pyarrow.array(values, from_pandas=True).cast(pyarrow.large_string())
    else:
        array = pyarrow.array(values.astype(STRING).array)
    return array.cast(pyarrow.large_string())
