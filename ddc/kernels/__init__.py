"""Numerical kernels (numba, ``cache=True``) and their plain NumPy twins.

The kernels compile on first use and numba keeps the machine code in its cache (next to the
sources, or in ``NUMBA_CACHE_DIR``); later processes load it. ``python -m ddc.precompile`` fills
the cache ahead of time, after installation (:func:`ddc.precompile.precompile`).
"""
