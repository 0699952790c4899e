"""The membership model with two unobserved segments: video-heavy and shipping-heavy customers.

A design of this package (not taken from a paper): the membership model of
docs/membership.rst at its default parameters (:data:`ddc.models.membership.TRUE_PARAMS`),
except that the benefit weights on shipping and video engagement differ by segment:

==============  =============  ==============  =======
segment (type)  ``theta_ship`` ``theta_video`` share
==============  =============  ==============  =======
0: video-heavy  0.2            1.5             0.4
1: ship-heavy   1.4            0.1             0.6
==============  =============  ==============  =======

The share-weighted means (0.92 and 0.66) are near the one-type defaults (0.8 and 0.5). Types
are numbered in ascending order of ``theta_ship``, the rule the mixture estimators use to label
their estimates.
"""

from __future__ import annotations

import pandas as pd

from ddc.mixture import Mixture
from ddc.models.membership import TRUE_PARAMS, membership

__all__ = ["membership_segments", "SEGMENT_PARAMS"]

SEGMENT_PARAMS = {"theta_ship": (0.2, 1.4), "theta_video": (1.5, 0.1), "share": (0.4, 0.6)}


def membership_segments(**model_options) -> Mixture:
    """The two-segment membership mixture (see the module docstring for the design).

    Parameters
    ----------
    **model_options
        Passed to :func:`ddc.models.membership` (e.g. ``beta``, prices).

    Returns
    -------
    ddc.Mixture
        Two types, ``by_type=["theta_ship", "theta_video"]``, with ``true_params`` set.

    Examples
    --------
    >>> import ddc
    >>> mix = ddc.models.membership_segments()
    >>> mix.true_params[["theta_ship[0]", "theta_ship[1]", "share[1]"]].tolist()
    [0.2, 1.4, 0.6]
    """
    model = membership(**model_options)
    truth = {k: v for k, v in TRUE_PARAMS.items() if k not in ("theta_ship", "theta_video")}
    for p in ("theta_ship", "theta_video"):
        for k, v in enumerate(SEGMENT_PARAMS[p]):
            truth[f"{p}[{k}]"] = v
    truth["share[1]"] = SEGMENT_PARAMS["share"][1]
    return Mixture(model, n_types=2, by_type=["theta_ship", "theta_video"],
                   true_params=pd.Series(truth), name="membership segments")
