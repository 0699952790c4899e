"""The results file: the JSON document :meth:`EstimationResults.save
<estimators.results.EstimationResults.save>` writes and
:func:`~estimators.results_loading.load_results` reads, checked field by field.

Numbers go through :mod:`ddc.io`'s strict JSON: non-finite values are the strings ``"nan"``,
``"inf"``, ``"-inf"``; reading refuses a ``null`` where a number belongs and any other bad value
with :class:`ddc.io.JSONFieldError` naming the file and the field (``params.values[1]
(theta_price) is null``), never reading it as NaN.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ddc.io import JSONFieldError, encode_json, json_float, json_floats, json_int, json_str

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "SavedResults", "decode_first_stage",
           "decode_mixture", "decode_results", "decode_share_units", "encode_arrays",
           "encode_first_stage", "encode_mixture", "encode_results", "encode_share_units"]

FORMAT_VERSION = 1
"""Version of the results file format."""

FORMAT_NAME = "ddc-econ estimation results"
"""The ``format`` field of a results file."""


def encode_results(fields: dict[str, Any]) -> dict[str, Any]:
    """The results document: ``fields`` under the format header, as strict JSON values.

    Parameters
    ----------
    fields : dict
        What the results hold (see :meth:`EstimationResults.to_dict
        <estimators.results.EstimationResults.to_dict>`); arrays and non-finite numbers allowed.

    Returns
    -------
    dict
        JSON-ready (:func:`ddc.io.encode_json`).
    """
    try:
        from ddc import __version__ as version
    except ImportError:  # pragma: no cover - the package is importable here
        version = None
    return encode_json({
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "package_version": version,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **fields,
    })


@dataclass
class SavedResults:
    """A decoded results document.

    Attributes
    ----------
    arguments : dict
        Constructor arguments of :class:`~estimators.results.EstimationResults` (``estimator``,
        ``params``, ``hessian``, ``loglik``, ..., the saved covariances as ``extra_covs``).
    cov_type : str
        The default covariance kind.
    unavailable : dict of str to str
        Why the other kinds were unavailable when saved.
    model_info : dict or None
        The model's description.
    fingerprint : dict or None
        The model's fingerprint.
    n_groups : int or None
        Units behind the cluster covariance.
    """

    arguments: dict[str, Any]
    cov_type: str
    unavailable: dict[str, str]
    model_info: dict[str, Any] | None
    fingerprint: dict[str, Any] | None
    n_groups: int | None
    first_stage: dict[str, Any] | None = None
    """The decoded first stage (:func:`decode_first_stage`), ``None`` if the file has none."""
    type_tables: list[dict[str, np.ndarray]] | None = None
    """A mixture's type-specific tables estimated in the EM (one dict per type), if saved."""
    share_units: dict[str, Any] | None = None
    """With shares that vary over units: the estimation units' ``share_design``, their
    ``first_states`` and the design's ``columns`` (:func:`decode_share_units`)."""
    mixture: dict[str, Any] | None = None
    """A mixture's ``n_types``, ``share_names`` and ``posteriors`` (:func:`decode_mixture`),
    ``None`` for one-type results."""


def decode_results(doc: Any, where: str) -> SavedResults:
    """Check and decode a results document.

    Parameters
    ----------
    doc : object
        The parsed JSON.
    where : str
        The file, for messages.

    Returns
    -------
    SavedResults

    Raises
    ------
    ValueError
        If it is not a results document of this format version.
    ddc.io.JSONFieldError
        If a field is missing or has a bad value (named, with the file).
    """
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise ValueError(f"{where} is not a ddc-econ results file (its 'format' field is "
                         f"{doc.get('format') if isinstance(doc, dict) else None!r}, expected "
                         f"{FORMAT_NAME!r})")
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{where} has format_version {version!r}; this version of "
                         f"ddc-econ reads format_version {FORMAT_VERSION}")
    try:
        return _decode(doc)
    except JSONFieldError as exc:
        raise JSONFieldError(f"{where}: {exc}; the file was edited or damaged",
                             exc.field) from None


def _json_matrix(rows: Any, k: int, field: str, names: Sequence[str]) -> np.ndarray:
    """A saved K x K matrix, each entry decoded by :func:`ddc.io.json_float` (named if bad)."""
    if not isinstance(rows, list) or len(rows) != k:
        got = f"{len(rows)} rows" if isinstance(rows, list) else json.dumps(rows)[:40]
        raise JSONFieldError(f"{field} has {got}; expected {k} rows of {k} numbers (one per "
                             f"estimated parameter {list(names)})", field)
    out = np.empty((k, k))
    for i, row in enumerate(rows):
        out[i] = json_floats(row, f"{field}[{i}] ({names[i]})", labels=names, length=k)
    return out



def _field(doc: dict, name: str) -> Any:
    if name not in doc:
        raise JSONFieldError(f"it has no {name!r} field (the file is incomplete)", name)
    return doc[name]


def _object(doc: dict, name: str, what: str) -> dict:
    value = doc.get(name) or {}
    if not isinstance(value, dict):
        raise JSONFieldError(f"{name} must be an object {what}", name)
    return value


def _named_floats(doc: dict, name: str) -> pd.Series:
    block = _field(doc, name)
    if not isinstance(block, dict):
        raise JSONFieldError(f"{name} is {json.dumps(block)[:40]}; expected "
                             "{\"names\": [...], \"values\": [...]}", name)
    names = block.get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise JSONFieldError(f"{name}.names must be a list of parameter names (strings)",
                             f"{name}.names")
    values = json_floats(block.get("values"), f"{name}.values", labels=names,
                         length=len(names))
    return pd.Series(values, index=pd.Index(names, dtype=object), dtype=float)


def _decode(doc: dict) -> SavedResults:
    params = _named_floats(doc, "params")
    fixed = _named_floats(doc, "fixed_params")
    names = list(params.index)
    k = len(names)
    saved = _field(doc, "covariances")
    if not isinstance(saved, dict):
        raise JSONFieldError("covariances must be an object {kind: matrix}", "covariances")
    covs = {kind: _json_matrix(m, k, f"covariances.{kind}", names) for kind, m in saved.items()}
    h = _field(doc, "hessian")
    converged = _field(doc, "converged")
    if not isinstance(converged, bool):
        raise JSONFieldError(f"converged is {json.dumps(converged)[:40]}; expected true or "
                             "false", "converged")
    notes = doc.get("notes") or []
    if not isinstance(notes, list):
        raise JSONFieldError("notes must be a list of strings", "notes")
    parts = _object(doc, "loglik_parts", "{part: number}")
    arguments = dict(
        estimator=json_str(_field(doc, "estimator"), "estimator"),
        params=params,
        hessian=None if h is None else _json_matrix(h, k, "hessian", names),
        loglik=json_float(_field(doc, "loglik"), "loglik"),
        loglik_parts={str(a): json_float(b, f"loglik_parts.{a}") for a, b in parts.items()},
        nobs=json_int(_field(doc, "nobs"), "nobs", minimum=1),
        n_units=json_int(doc.get("n_units"), "n_units", minimum=1, optional=True),
        df_model=json_int(doc.get("df_model"), "df_model", minimum=0, optional=True),
        converged=converged,
        iterations=json_int(doc.get("iterations"), "iterations", optional=True),
        function_evals=json_int(doc.get("function_evals"), "function_evals", optional=True),
        seconds=json_float(doc.get("seconds"), "seconds", optional=True),
        extra_covs=covs,
        fixed_params=fixed,
        notes=[json_str(n, f"notes[{i}]") for i, n in enumerate(notes)],
    )
    model = doc.get("model")
    if model is not None and not isinstance(model, dict):
        raise JSONFieldError("model must be an object describing the model", "model")
    fingerprint = doc.get("model_fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, dict):
        raise JSONFieldError("model_fingerprint must be an object (Model.fingerprint())",
                             "model_fingerprint")
    unavailable = _object(doc, "unavailable_covariances", "{kind: reason}")
    return SavedResults(
        arguments=arguments,
        cov_type=json_str(_field(doc, "cov_type"), "cov_type"),
        unavailable={str(a): str(b) for a, b in unavailable.items()},
        model_info=model,
        fingerprint=fingerprint,
        n_groups=json_int(doc.get("n_groups"), "n_groups", minimum=1, optional=True),
        first_stage=decode_first_stage(doc.get("first_stage")),
        type_tables=_decode_type_tables(doc.get("type_tables")),
        share_units=decode_share_units(doc.get("share_units")),
        mixture=decode_mixture(doc.get("mixture"), names) if "mixture" in doc
        else _older_mixture(model),
    )


def _older_mixture(model: Any) -> dict[str, Any] | None:
    """A mixture saved before the ``mixture`` field existed (its model description says so):
    its number of types, without share names or posteriors."""
    info = model.get("mixture") if isinstance(model, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get("n_types"), int):
        return None
    return {"n_types": info["n_types"], "share_names": None, "posteriors": None}


def encode_arrays(d: dict) -> dict[str, Any]:
    """``{name: array}`` as ``{name: {"shape": [...], "values": [...]}}`` (flat, row-major)."""
    return {str(k): {"shape": list(np.shape(v)), "values": np.asarray(v, float).ravel()}
            for k, v in d.items()}


def _decode_arrays(block: Any, field: str) -> dict[str, np.ndarray]:
    """The inverse of :func:`encode_arrays`, each entry checked and named when bad."""
    block = block or {}
    if not isinstance(block, dict):
        raise JSONFieldError(f"{field} must be an object {{name: array}}", field)
    out = {}
    for var, a in block.items():
        where = f"{field}.{var}"
        shape = a.get("shape") if isinstance(a, dict) else None
        if not isinstance(shape, list) or not all(isinstance(k, int) and k >= 0
                                                  for k in shape):
            raise JSONFieldError(f"{where}.shape must be a list of sizes", where)
        values = json_floats(a.get("values"), f"{where}.values", length=int(np.prod(shape)))
        out[str(var)] = np.asarray(values, dtype=float).reshape(shape)
    return out


def _decode_type_tables(doc: Any) -> list[dict[str, np.ndarray]] | None:
    if doc is None:
        return None
    if not isinstance(doc, list):
        raise JSONFieldError("type_tables must be a list (one object of tables per type)",
                             "type_tables")
    return [_decode_arrays(t, f"type_tables[{k}]") for k, t in enumerate(doc)]


def encode_first_stage(ts: Any) -> dict[str, Any] | None:
    """What a results file keeps of the first stage (:class:`estimators.first_stage.
    TransitionEstimate`), so that loaded results solve with the estimated transitions and can
    draw them: the estimated tables and their counts (cell frequencies), the transition
    parameters with their covariance and which are free (parametric), the estimate's
    sensitivity :math:`B = \\partial\\hat\\theta / \\partial\\psi'`; ``None`` when nothing
    was estimated (per-row scores and the likelihood functions are not kept)."""
    if ts is None or not (getattr(ts, "tables", None) or len(getattr(ts, "params", ()))):
        return None

    B = ts.sensitivity
    return {
        "method": str(ts.method), "nobs": int(ts.nobs), "loglik": float(ts.loglik),
        "tables": encode_arrays(ts.tables), "counts": encode_arrays(ts.counts),
        "params": {"names": [str(n) for n in ts.params.index],
                   "values": ts.params.to_numpy(dtype=float)},
        "cov": np.asarray(ts.cov, dtype=float).reshape(len(ts.params), len(ts.params)),
        "free": [str(n) for n in ts.free],
        "sensitivity": None if B is None else {
            "rows": [str(n) for n in B.index], "columns": [str(n) for n in B.columns],
            "values": B.to_numpy(dtype=float)},
    }


def decode_first_stage(doc: Any) -> dict[str, Any] | None:
    """Check and decode the ``first_stage`` field (:func:`encode_first_stage`): a dict of
    ``method``, ``nobs``, ``loglik``, ``tables`` and ``counts`` (variable -> array),
    ``params`` (Series), ``cov``, ``free`` and ``sensitivity`` (DataFrame or None)."""
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise JSONFieldError("first_stage must be an object (the first stage's estimate)",
                             "first_stage")

    def arrays(name: str) -> dict[str, np.ndarray]:
        return _decode_arrays(doc.get(name), f"first_stage.{name}")

    params = (_named_floats({"first_stage.params": doc["params"]}, "first_stage.params")
              if "params" in doc else pd.Series(dtype=float))
    names = list(params.index)
    free = doc.get("free") or []
    if not isinstance(free, list) or any(n not in names for n in free):
        raise JSONFieldError(f"first_stage.free must list some of {names}", "first_stage.free")
    sens = doc.get("sensitivity")
    B = None
    if sens is not None:
        rows, cols = sens.get("rows"), sens.get("columns")
        if not (isinstance(rows, list) and isinstance(cols, list)):
            raise JSONFieldError("first_stage.sensitivity needs rows and columns (names)",
                                 "first_stage.sensitivity")
        vals = sens.get("values")
        if not isinstance(vals, list) or len(vals) != len(rows):
            raise JSONFieldError(f"first_stage.sensitivity.values must have {len(rows)} rows",
                                 "first_stage.sensitivity.values")
        B = pd.DataFrame([json_floats(v, f"first_stage.sensitivity.values[{i}]",
                                      length=len(cols)) for i, v in enumerate(vals)],
                         index=rows, columns=cols, dtype=float)
    return {
        "method": json_str(doc.get("method"), "first_stage.method"),
        "nobs": json_int(doc.get("nobs"), "first_stage.nobs"),
        "loglik": json_float(doc.get("loglik"), "first_stage.loglik"),
        "tables": arrays("tables"), "counts": arrays("counts"), "params": params,
        "cov": (_json_matrix(doc.get("cov"), len(names), "first_stage.cov", names)
                if names else np.zeros((0, 0))),
        "free": [str(n) for n in free], "sensitivity": B,
    }


def encode_share_units(design: np.ndarray | None, first_states: np.ndarray | None,
                       columns: Sequence[str]) -> dict[str, Any] | None:
    """What a results file keeps of the estimation units when a mixture's shares vary over
    them (``shares_by``, ``share_covariates``): the distinct pairs (first state :math:`s_{i1}`,
    share covariates :math:`z_i`) with their counts :math:`n_j`.

    Pooling a counterfactual over the types needs only these: the pooled weight of type
    :math:`k` is :math:`\\bar w_k = \\sum_j (n_j / N) w_k(z_j)` overall and the same sum over
    the pairs whose first state lies in a block by block
    (:mod:`simulations.counterfactual_mixture`). ``None`` when the shares are constant.

    Parameters
    ----------
    design : numpy.ndarray or None
        ``(N, C)`` share covariates of the units (``MixtureResults.share_design``).
    first_states : numpy.ndarray or None
        ``(N,)`` each unit's first observed flat state.
    columns : sequence of str
        The design's columns (``mix.share_columns``).

    Returns
    -------
    dict or None
        ``{"columns": [...], "first_states": [...], "rows": [[...], ...], "counts": [...]}``.
    """
    if design is None:
        return None
    Z = np.asarray(design, dtype=float)
    if first_states is None:
        raise ValueError("the share design of the estimation units comes without their first "
                         "states; both are needed to pool counterfactuals by block")
    s = np.asarray(first_states, dtype=np.int64)
    if Z.ndim != 2 or len(s) != len(Z) or Z.shape[1] != len(columns):
        raise ValueError(f"share design of shape {Z.shape} does not match {len(s)} first "
                         f"states and the columns {list(columns)}")
    pairs, counts = np.unique(np.column_stack([s.astype(float), Z]), axis=0,
                              return_counts=True)
    return {"columns": [str(c) for c in columns],
            "first_states": [int(v) for v in pairs[:, 0]],
            "rows": pairs[:, 1:], "counts": [int(n) for n in counts]}


def decode_share_units(doc: Any) -> dict[str, Any] | None:
    """Check and decode the ``share_units`` field (:func:`encode_share_units`): the units
    expanded from the distinct pairs and their counts, ``share_design`` ``(N, C)``,
    ``first_states`` ``(N,)`` and ``columns``; ``None`` if the file has none."""
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise JSONFieldError("share_units must be an object {columns, first_states, rows, "
                             "counts} (the estimation units' share covariates)", "share_units")
    columns = doc.get("columns")
    if not isinstance(columns, list) or not columns or \
            not all(isinstance(c, str) for c in columns):
        raise JSONFieldError("share_units.columns must be a list of the share design's column "
                             "names (strings)", "share_units.columns")
    for name in ("first_states", "rows", "counts"):
        if not isinstance(doc.get(name), list):
            got = "missing" if name not in doc else json.dumps(doc[name])[:40]
            raise JSONFieldError(f"share_units.{name} is {got}; expected a list (one entry per "
                                 "distinct unit profile)", f"share_units.{name}")
    n = len(doc["counts"])
    for name in ("first_states", "rows"):
        if len(doc[name]) != n:
            raise JSONFieldError(f"share_units.{name} has {len(doc[name])} entries; "
                                 f"share_units.counts has {n}", f"share_units.{name}")
    first = np.array([json_int(v, f"share_units.first_states[{j}]")
                      for j, v in enumerate(doc["first_states"])], dtype=np.int64)
    counts = np.array([json_int(v, f"share_units.counts[{j}]", minimum=1)
                       for j, v in enumerate(doc["counts"])], dtype=np.int64)
    rows = np.array([json_floats(r, f"share_units.rows[{j}]", labels=columns,
                                 length=len(columns))
                     for j, r in enumerate(doc["rows"])], dtype=float).reshape(n, len(columns))
    return {"columns": [str(c) for c in columns],
            "first_states": np.repeat(first, counts),
            "share_design": np.repeat(rows, counts, axis=0)}


def encode_mixture(n_types: int, share_names: Sequence[str],
                   posteriors: pd.DataFrame | None) -> dict[str, Any]:
    """What a results file keeps of a mixture's results beyond the parameters: the number of
    types, the names of the share parameters (so the shares are found without the mixture) and
    each unit's posterior type probabilities :math:`q_{ik}` (``N x K`` numbers, row-major,
    with the unit ids; about 40 bytes per unit and type in the file).

    Returns
    -------
    dict
        ``{"n_types": K, "share_names": [...], "posteriors": {"index_name": ..., "units":
        [...], "shape": [N, K], "values": [...]}}`` (``"posteriors": null`` when not given).
    """
    post = None
    if posteriors is not None:
        q = np.asarray(posteriors, dtype=float)
        units = [u.item() if isinstance(u, np.generic) else u for u in posteriors.index]
        post = {"index_name": None if posteriors.index.name is None
                else str(posteriors.index.name),
                "units": units, "shape": list(q.shape), "values": q.ravel()}
    return {"n_types": int(n_types), "share_names": [str(n) for n in share_names],
            "posteriors": post}


def decode_mixture(doc: Any, param_names: Sequence[str]) -> dict[str, Any] | None:
    """Check and decode the ``mixture`` field (:func:`encode_mixture`): ``n_types``,
    ``share_names`` (each an estimated parameter) and ``posteriors`` (a DataFrame indexed by
    unit, rows summing to one, or ``None`` if not saved); ``None`` if the file has none."""
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise JSONFieldError("mixture must be an object {n_types, share_names, posteriors}",
                             "mixture")
    K = json_int(doc.get("n_types"), "mixture.n_types", minimum=1)
    names = doc.get("share_names")
    if not isinstance(names, list) or any(n not in param_names for n in names):
        raise JSONFieldError(f"mixture.share_names is {json.dumps(names)[:60]}; expected a "
                             f"list of estimated parameters (of {list(param_names)})",
                             "mixture.share_names")
    post = doc.get("posteriors")
    if post is None:
        return {"n_types": K, "share_names": list(names), "posteriors": None}
    where = "mixture.posteriors"
    if not isinstance(post, dict):
        raise JSONFieldError(f"{where} must be an object {{units, shape, values}}", where)
    units = post.get("units")
    if not isinstance(units, list) or not all(
            isinstance(u, (int, str)) and not isinstance(u, bool) for u in units):
        raise JSONFieldError(f"{where}.units must be a list of unit ids (integers or strings)",
                             f"{where}.units")
    shape = post.get("shape")
    if shape != [len(units), K]:
        raise JSONFieldError(f"{where}.shape is {json.dumps(shape)[:40]}; expected "
                             f"[{len(units)}, {K}] (units x types)", f"{where}.shape")
    q = np.asarray(json_floats(post.get("values"), f"{where}.values", length=len(units) * K),
                   dtype=float).reshape(len(units), K)
    bad = np.flatnonzero(~((q >= 0).all(axis=1) & (np.abs(q.sum(axis=1) - 1.0) < 1e-8)))
    if bad.size:
        i = int(bad[0])
        raise JSONFieldError(f"{where}.values of unit {units[i]!r} (row {i}) are "
                             f"{q[i].tolist()}; expected probabilities summing to one",
                             f"{where}.values")
    name = post.get("index_name")
    frame = pd.DataFrame(q, index=pd.Index(units, name=None if name is None else str(name)),
                         columns=pd.RangeIndex(K, name="type"))
    return {"n_types": K, "share_names": list(names), "posteriors": frame}
