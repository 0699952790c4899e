"""Sphinx configuration for the ddc-econ documentation.

Build (warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The API reference is generated at build time: the modules in ``API_MODULES`` (and the other
public submodules of ``ddc``, ``estimators`` and ``simulations``) that import are written to
``docs/_generated_api.rst`` (git-ignored), which ``api.rst`` includes. A module that does not
exist yet is left out instead of breaking the build, so the documentation builds on any state of
the tree while the code is being written. A name that a package re-exports (``__all__``) from a
documented submodule is documented once, with its submodule, and listed in a table under the
package.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pkgutil
import sys
import traceback
from pathlib import Path

DOCS_DIR = Path(__file__).resolve().parent
ROOT_DIR = DOCS_DIR.parent
# Document the source tree next to this file (it is also what `pip install .` installs).
sys.path.insert(0, str(ROOT_DIR))
# No display while autodoc imports the package (matplotlib is a dependency).
os.environ.setdefault("MPLBACKEND", "Agg")

# -- Project information ------------------------------------------------------------------------

project = "ddc-econ"
author = "ddc-econ developers"
copyright = "ddc-econ developers"  # noqa: A001 (Sphinx's name)
try:  # the tree's own version, from pyproject.toml
    import tomllib

    with open(ROOT_DIR / "pyproject.toml", "rb") as fh:
        release = tomllib.load(fh)["project"]["version"]
except Exception:  # e.g. Python 3.10 without tomllib: the installed distribution's version
    try:
        from importlib.metadata import version as _dist_version

        release = _dist_version("ddc-econ")
    except Exception:
        release = "unknown"
version = ".".join(release.split(".")[:2])

# -- General configuration ----------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]
# No sphinx.ext.intersphinx: the build machines have no network.

templates_path: list[str] = []
# _generated_*.rst files are only ever pulled in by `.. include::`, never built as pages.
exclude_patterns = ["_build", "_generated_*", "Thumbs.db", ".DS_Store"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
language = "en"
pygments_style = "sphinx"

# autodoc / autosummary / numpydoc
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types; no duplicate fields
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autosummary_generate = False  # tables only (no stub pages); members live in _generated_api.rst
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# -- HTML output --------------------------------------------------------------------------------

if importlib.util.find_spec("pydata_sphinx_theme") is not None:
    html_theme = "pydata_sphinx_theme"
    html_theme_options = {
        "navigation_with_keys": False,
        "show_toc_level": 2,
        "secondary_sidebar_items": ["page-toc"],
    }
else:
    html_theme = "alabaster"
    html_theme_options = {}
html_title = f"ddc-econ {release}"
html_static_path: list[str] = []
html_show_sourcelink = False

# -- API reference generator --------------------------------------------------------------------

#: Modules of the API reference, in page order, with a one-line description each.
API_MODULES: list[tuple[str, str]] = [
    ("ddc", "The model layer: top-level names."),
    ("ddc.model", "The model object: state variables, actions, utility, transitions, beta."),
    ("ddc.statespace", "State variables, the state space and its indexing."),
    ("ddc.utility", "Utility specifications: linear in parameters, or a user callable."),
    ("ddc.transitions", "Factored transition matrices."),
    ("ddc.solver", "Solving the Bellman fixed point; values, choice probabilities, derivatives."),
    ("ddc.models", "Built-in models: the membership model and Rust's bus model."),
    ("ddc.datasets", "Data sets: the Rust (1987) bus data loader."),
    ("ddc.panel", "Panel data: validation, coding, sufficient statistics."),
    ("estimators", "Estimators (NFXP, CCP, NPL, PQR, MaxEntIRL), inference, results, compare()."),
    ("simulations", "Simulation, counterfactual reports and Monte Carlo studies."),
]
#: Other public submodules of these packages are found and added after their package's group;
#: these are left out (implementation detail: numba kernels and their NumPy twins, the CLI).
API_SKIP = ("ddc.kernels", "simulations.cli")
GENERATED_API = DOCS_DIR / "_generated_api.rst"


def _import_status(name: str) -> tuple[object | None, str | None]:
    """Import ``name``: (module, None); (None, None) if it does not exist; else (None, error)."""
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # The module itself (or a parent package) is missing: simply not written yet.
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            return None, None
        return None, "".join(traceback.format_exception_only(type(exc), exc)).strip()
    except Exception as exc:  # an existing module that fails to import
        return None, "".join(traceback.format_exception_only(type(exc), exc)).strip()
    if getattr(module, "__file__", None) is None:
        return None, None  # a bare directory (namespace package): no code yet
    return module, None


def _api_modules() -> list[tuple[str, str]]:
    """``API_MODULES`` plus the other public submodules of its packages, in page order."""
    listed = [name for name, _ in API_MODULES]
    out = list(API_MODULES)
    for pkg in ("ddc", "estimators", "simulations"):
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            continue
        extra = []
        for info in pkgutil.iter_modules(list(spec.submodule_search_locations)):
            full = f"{pkg}.{info.name}"
            if info.name.startswith("_") or full in listed or full.startswith(API_SKIP):
                continue
            extra.append((full, ""))
        # after the last listed module of the same package
        pos = max(i for i, (name, _) in enumerate(out) if name.split(".")[0] == pkg) + 1
        out[pos:pos] = sorted(extra)
    return out


def _public_names(module: object) -> list[str]:
    """Public names of a module: ``__all__``, else non-underscore names defined in the project."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return [n for n in names if isinstance(n, str)]
    top = module.__name__.split(".")[0]
    out = []
    for n, obj in vars(module).items():
        if n.startswith("_") or inspect.ismodule(obj):
            continue
        home = str(getattr(obj, "__module__", ""))
        if callable(obj) and home.split(".")[0] == top:
            out.append(n)
    return out


def _home(obj: object) -> str | None:
    """The module that defines ``obj`` (classes and functions only)."""
    if inspect.isclass(obj) or inspect.isroutine(obj):
        mod = getattr(obj, "__module__", None)
        return mod if isinstance(mod, str) else None
    return None


def _underline(text: str, char: str) -> str:
    return f"{text}\n{char * len(text)}\n"


def write_api_page() -> str:
    """Write ``_generated_api.rst`` for the modules that import now; return its text."""
    modules = _api_modules()
    found = {}
    missing, broken = [], []
    for name, _ in modules:
        module, error = _import_status(name)
        if module is not None:
            found[name] = module
        elif error is None:
            missing.append(name)
        else:
            broken.append((name, error))

    parts = [".. This file is generated by docs/conf.py at every build. Do not edit.\n"]
    if not found:
        parts.append("No module of the package could be imported when this page was built.\n")
    for name, blurb in modules:
        module = found.get(name)
        if module is None:
            continue
        public = _public_names(module)
        # Names that another documented module defines are documented there, not twice.
        elsewhere = []
        for n in public:
            home = _home(getattr(module, n, None))
            if home is not None and home != name and home in found:
                elsewhere.append((n, home))
        parts.append(_underline(f"``{name}``", "-"))
        if blurb:
            parts.append(blurb + "\n")
        parts.append(f".. automodule:: {name}\n   :members:\n   :show-inheritance:")
        if elsewhere:
            parts.append("   :exclude-members: " + ", ".join(n for n, _ in elsewhere))
        parts.append("")
        if elsewhere:
            parts.append(f"Also available as ``{name}.<name>``, documented with their module:\n")
            # full names, so leave the automodule's current module first
            parts.append(".. currentmodule:: None\n")
            parts.append(".. autosummary::\n   :nosignatures:\n")
            parts.extend(f"   {home}.{n}" for n, home in elsewhere)
            parts.append("")
    if missing or broken:
        parts.append(_underline("Not in this build", "-"))
        if missing:
            parts.append(
                "These modules did not exist when the documentation was built: "
                + ", ".join(f"``{n}``" for n in missing)
                + ".\n"
            )
        for n, err in broken:
            # The message goes in a literal block so that it cannot break the reST.
            parts.append(f"``{n}`` failed to import::\n")
            parts.extend("   " + line for line in err.splitlines())
            parts.append("")
    if missing:
        print(f"docs/conf.py: API reference without (not written yet): {', '.join(missing)}")
    for n, err in broken:
        print(f"docs/conf.py: API reference without {n}, which failed to import: {err}")
    text = "\n".join(parts).rstrip() + "\n"
    # Rewrite only on change, so that Sphinx does not re-read api.rst on every build.
    if not GENERATED_API.exists() or GENERATED_API.read_text(encoding="utf-8") != text:
        GENERATED_API.write_text(text, encoding="utf-8")
    return text


write_api_page()
