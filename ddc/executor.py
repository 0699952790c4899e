"""One executor for independent tasks: serially, in a local process pool, or on dask.distributed.

Monte Carlo replications (:func:`simulations.montecarlo.monte_carlo`) and the tasks of the
out-of-core reduction (:func:`ddc.outofcore.sufficient_statistics`) are independent pieces of
work whose results are combined afterwards. Both run them through :func:`executor`:

>>> with executor("serial") as ex:
...     futures = [ex.submit(pow, 2, k) for k in range(4)]
...     sorted(f.result() for f in ex.as_completed(futures))
[1, 2, 4, 8]

The scheduler is named once, in the same way everywhere (:data:`SCHEDULERS`, an address of a
running dask scheduler, or a ``distributed.Client``). Objects shared by many tasks (a model, a
study's settings) travel as bytes made by :func:`dumps`: the standard pickle, or cloudpickle
(installed with dask) for what pickle cannot send, such as a model whose transition function is
a closure; :func:`cached_loads` unpacks them once per worker process.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
from collections.abc import Callable, Iterator, Sequence

__all__ = [
    "SCHEDULERS",
    "Executor",
    "cached_loads",
    "dask_client",
    "dumps",
    "executor",
    "loads",
    "resolve_scheduler",
]

#: Scheduler names accepted wherever a ``scheduler`` argument is taken; an address
#: ``"tcp://host:port"`` of a running dask scheduler, or a ``distributed.Client``, also works.
SCHEDULERS = {
    "serial": "in this process, one task after another",
    "processes": "a local process pool (concurrent.futures, 'spawn' start method)",
    "dask": "dask.distributed on a LocalCluster started for the call (processes, one thread each)",
}

_DASK_PROTOCOLS = ("tcp://", "tls://", "inproc://", "ucx://")


def resolve_scheduler(scheduler) -> str:
    """``"serial"``, ``"processes"`` or ``"dask"``: the kind of a ``scheduler`` argument.

    Parameters
    ----------
    scheduler : None, str or distributed.Client
        ``None``/``"serial"``, ``"processes"``, ``"dask"``, an address ``"tcp://..."`` (or
        another dask protocol, ``"tls://"``, ``"inproc://"``, ``"ucx://"``) or a
        ``distributed.Client``.

    Raises
    ------
    ValueError
        For anything else, listing what is accepted.

    Examples
    --------
    >>> resolve_scheduler(None), resolve_scheduler("tcp://10.0.0.5:8786")
    ('serial', 'dask')
    """
    if scheduler is None:
        return "serial"
    if isinstance(scheduler, str):
        if scheduler in SCHEDULERS:
            return scheduler
        if scheduler.startswith(_DASK_PROTOCOLS):
            return "dask"
    elif type(scheduler).__name__ == "Client" and type(scheduler).__module__.startswith(
            "distributed"):
        return "dask"
    accepted = "; ".join(f"{k!r}: {v}" for k, v in SCHEDULERS.items())
    raise ValueError(f"unknown scheduler {scheduler!r}; accepted: None (serial); {accepted}; an "
                     "address 'tcp://host:port' of a running dask scheduler; or a "
                     "distributed.Client")


class _DeferredFuture:
    """A future computed on demand in this process (the serial scheduler)."""

    def __init__(self, fn: Callable, args: tuple):
        self.fn, self.args = fn, args
        self._done = False
        self._value = self._error = None

    def _run(self) -> None:
        if not self._done:
            try:
                self._value = self.fn(*self.args)
            except Exception as e:  # noqa: BLE001 - handed to the caller by result()
                self._error = e
            self._done = True

    def result(self):
        self._run()
        if self._error is not None:
            raise self._error
        return self._value

    def exception(self):
        self._run()
        return self._error


class Executor:
    """Submit tasks and iterate over them as they complete, whatever runs them.

    Made by :func:`executor`; ``kind`` is ``"serial"``, ``"processes"`` or ``"dask"``.
    """

    def __init__(self, kind: str, pool=None, client=None):
        self.kind, self.pool, self.client = kind, pool, client

    def __repr__(self) -> str:
        return f"Executor({self.kind!r})"

    def share(self, obj):
        """A handle on ``obj`` to pass to many tasks (sent to each dask worker once)."""
        if self.kind == "dask":
            # a fresh key per call: with content hashing, a second call with the same data can
            # race the release of the first call's copy ("lost dependencies")
            return self.client.scatter(obj, broadcast=True, hash=False)
        return obj

    def submit(self, fn: Callable, *args):
        """Run ``fn(*args)``; returns a future with ``result()`` and ``exception()``. ``fn``
        must be importable by name (a module-level function) for processes and dask."""
        if self.kind == "serial":
            return _DeferredFuture(fn, args)
        if self.kind == "processes":
            return self.pool.submit(fn, *args)
        return self.client.submit(fn, *args, pure=False)

    def as_completed(self, futures: Sequence) -> Iterator:
        """The futures as they complete (in submission order for the serial scheduler)."""
        if self.kind == "serial":
            for f in futures:
                f._run()
                yield f
        elif self.kind == "processes":
            import concurrent.futures as cf

            yield from cf.as_completed(futures)
        else:
            from distributed import as_completed

            yield from as_completed(futures)


@contextlib.contextmanager
def dask_client(scheduler, n_workers: int | None = None):
    """A ``distributed.Client`` for ``scheduler``: the client itself when one is given (left
    running), a client of a LocalCluster started for the context (``"dask"``: ``n_workers``
    processes, 2 by default, one thread each), or a client connected to an address."""
    from distributed import Client, LocalCluster

    if not isinstance(scheduler, str):
        yield scheduler  # a Client the caller owns
    elif scheduler == "dask":
        with LocalCluster(n_workers=n_workers or 2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            yield client
    else:
        with Client(scheduler) as client:
            yield client


@contextlib.contextmanager
def executor(scheduler, n_workers: int | None = None) -> Iterator[Executor]:
    """A context yielding an :class:`Executor` for ``scheduler`` (see
    :func:`resolve_scheduler`).

    A process pool or LocalCluster started here is shut down on exit; a ``distributed.Client``
    passed in is left running.

    Parameters
    ----------
    scheduler : None, str or distributed.Client
        As :func:`resolve_scheduler`.
    n_workers : int, optional
        Processes of a pool (all cores by default) or workers of a LocalCluster (2 by default).
    """
    kind = resolve_scheduler(scheduler)
    if kind == "serial":
        yield Executor("serial")
    elif kind == "processes":
        import concurrent.futures as cf
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(max_workers=n_workers,
                                    mp_context=mp.get_context("spawn")) as pool:
            yield Executor("processes", pool=pool)
    else:
        with dask_client(scheduler, n_workers) as client:
            yield Executor("dask", client=client)


# ---------------------------------------------------------------------------- shipping objects


def dumps(obj, what: str = "the object") -> bytes:
    """``obj`` as bytes for another process: the standard pickle, or cloudpickle when pickle
    cannot (lambdas, local functions, closures such as a model's transition function).

    Parameters
    ----------
    obj : object
    what : str
        What ``obj`` is, for the error message.

    Raises
    ------
    RuntimeError
        When pickle cannot send ``obj`` and cloudpickle is not installed, with the remedies.
    """
    try:
        return pickle.dumps(("pickle", obj), protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError):
        pass
    try:
        import cloudpickle
    except ImportError:
        raise RuntimeError(
            f"{what} cannot be sent to worker processes by the standard pickle (lambdas, local "
            "functions and closures cannot); define them at module level, use "
            "functools.partial, install cloudpickle (pip install 'ddc-econ[distributed]'), or "
            "run with scheduler=None") from None
    return pickle.dumps(("cloudpickle", cloudpickle.dumps(obj)),
                        protocol=pickle.HIGHEST_PROTOCOL)


def loads(blob: bytes):
    """The object packed by :func:`dumps`."""
    how, payload = pickle.loads(blob)
    return payload if how == "pickle" else pickle.loads(payload)


_CACHE: dict[str, object] = {}
_CACHE_SIZE = 8


def cached_loads(blob: bytes):
    """:func:`loads`, cached per process by the bytes' content (a worker unpacks a model or a
    study once for all its tasks)."""
    key = hashlib.sha1(blob).hexdigest()
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = loads(blob)
    return _CACHE[key]
