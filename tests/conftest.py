"""Shared test configuration.

Floating-point errors raise (pyblp's habit): a silent overflow or invalid operation in NumPy is a
bug. Code that legitimately takes log(0) or divides by zero does so under ``np.errstate``.
"""

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _raise_on_float_errors():
    old = np.seterr(all="raise", under="ignore")
    yield
    np.seterr(**old)
