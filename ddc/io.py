"""Files and folders written completely or not at all, and strict JSON: the package's one writer.

Every file the package writes (results JSON, tables, reports, simulated panels, Monte Carlo
tables) goes through this module, so that the same guarantees hold everywhere:

* **Atomic files.** :func:`atomic_path` (and :func:`write_text`, :func:`write_bytes`,
  :func:`open_text`, :func:`write_json` on top of it) writes into a hidden temporary file in the
  destination's folder, flushes and ``fsync``\\ s it, and renames it over the destination with
  :func:`os.replace`; the folder is synced too. A reader sees the old file or the new one,
  never a part.
* **Atomic folders.** :func:`atomic_directory` writes a whole folder beside the destination and
  swaps it in once complete, with a :data:`MANIFEST` listing every file it holds. An existing
  folder is replaced only if it is empty or a manifest written by this module lists every file
  (and sub-folder) in it; this is checked when the write starts and again at the swap, and a
  folder holding anything else is never touched: :class:`UnsafeOverwriteError` names the
  unknown files. Files added to the destination while the new folder is written are found at
  the swap and stop it.
* **Modes.** New files and folders get the modes the umask gives (``0o666 & ~umask`` for
  files), not the private ``0o600`` of :func:`tempfile.mkstemp`; overwriting keeps the mode of
  the file or folder replaced.
* **Leftovers.** Temporary names are ``.<name>.ddc-tmp-<pid>-<token>`` (backups of a folder
  being swapped ``.<name>.ddc-old-<pid>-<token>``). A write killed before its rename
  (``kill -9``, power loss) leaves one behind; the next write into the same folder removes the
  leftovers of writers that are no longer running (:func:`clean_leftovers`), and restores a
  folder whose swap was cut in the middle.
* **Strict JSON.** :func:`dumps_json` writes non-finite numbers as the strings ``"nan"``,
  ``"inf"``, ``"-inf"`` (never the invalid bare ``NaN``); :func:`read_json` refuses bare
  ``NaN``/``Infinity`` and names the file, line and column of a syntax error; :func:`json_float`
  and friends decode one field and name it when its value is bad -- a ``null`` where a number
  is required is refused, never read as NaN.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import errno
import json
import math
import os
import re
import secrets
import shutil
import stat
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "MANIFEST",
    "JSONFieldError",
    "UnsafeOverwriteError",
    "atomic_directory",
    "atomic_path",
    "check_folder_target",
    "check_file_target",
    "clean_leftovers",
    "probe_folder",
    "dumps_json",
    "encode_json",
    "is_output_folder",
    "json_float",
    "json_floats",
    "json_int",
    "json_str",
    "open_text",
    "read_json",
    "write_bytes",
    "write_json",
    "write_text",
]

MANIFEST = "MANIFEST.json"
"""The file that marks a folder written by :func:`atomic_directory` and lists its files."""

MANIFEST_FORMAT = "ddc-econ output folder"
"""The ``format`` field of a :data:`MANIFEST`."""

_TAG = ".ddc-"
_LEFTOVER = re.compile(r"^\.(?P<target>.+)\.ddc-(?P<kind>tmp|old)-(?P<pid>\d+)-[0-9a-f]{8}"
                       r"(?P<suffix>\.[A-Za-z0-9]{1,10})?$")


class UnsafeOverwriteError(FileExistsError):
    """The destination holds files this package did not write; nothing was changed.

    Attributes
    ----------
    path : pathlib.Path
        The destination.
    unknown : list of str
        The files (and folders) not listed by the destination's manifest, relative to it.
    """

    def __init__(self, message: str, path: Path, unknown: Sequence[str] = ()):
        super().__init__(message)
        self.path = path
        self.unknown = list(unknown)


class JSONFieldError(ValueError):
    """A field of a JSON document has a bad value.

    Attributes
    ----------
    field : str
        The field, as a path such as ``params.values[2]``.
    """

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


# ------------------------------------------------------------------------------------ helpers


def _umask() -> int:
    """The process umask (read from ``/proc`` where possible: ``os.umask`` sets it to read it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_name(target: Path, kind: str = "tmp", suffix: str = "") -> Path:
    token = secrets.token_hex(4)
    return target.parent / f".{target.name}{_TAG}{kind}-{os.getpid()}-{token}{suffix}"


def _pid_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # another user's process, or no way to tell: keep its files
    return True


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every system syncs folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _folder_of(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _not_writable(path: Path, folder: Path, exc: OSError) -> OSError:
    return type(exc)(exc.errno, f"cannot write {str(path)!r}: the folder {str(folder)!r} is "
                                f"not writable ({exc.strerror}); choose another destination")


def clean_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Remove the leftovers of killed writes in ``folder``.

    A leftover is a hidden temporary file or folder named by this module
    (``.<name>.ddc-tmp-<pid>-<token>``) whose writing process is no longer running. A backup
    ``.<name>.ddc-old-...`` of a folder whose swap was cut between its two renames is put back
    in place when ``<name>`` is missing, and otherwise removed as far as its manifest lists its
    files (anything else in it is kept, with a warning). Called by every write into a folder.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to clean.

    Returns
    -------
    list of pathlib.Path
        The leftovers removed or restored.
    """
    folder = Path(folder)
    done: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return done
    for entry in entries:
        m = _LEFTOVER.match(entry.name)
        if m is None or _pid_running(int(m["pid"])):
            continue
        path = Path(entry.path)
        try:
            if m["kind"] == "old" and entry.is_dir(follow_symlinks=False):
                target = folder / m["target"]
                if not os.path.lexists(target):
                    os.rename(path, target)  # the swap was cut: the old folder goes back
                else:
                    _remove_listed(path)
            elif entry.is_dir(follow_symlinks=False):
                if _manifest_files(path) is None:
                    shutil.rmtree(path)  # cut while being written: all of it is ours
                else:
                    _remove_listed(path)  # complete (or an old folder just swapped out)
            else:
                os.unlink(path)
        except FileNotFoundError:
            continue  # another process cleaned it
        done.append(path)
    return done


# ------------------------------------------------------------------------------------ files


def check_file_target(path: str | os.PathLike) -> Path:
    """Check, before any work, that a file can be written at ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The destination file.

    Returns
    -------
    pathlib.Path
        The absolute path.

    Raises
    ------
    FileNotFoundError
        If its folder does not exist.
    IsADirectoryError
        If ``path`` is a folder.
    PermissionError
        If its folder is not writable.
    """
    path = Path(os.path.abspath(path))
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"cannot write {str(path)!r}: the folder "
                                              f"{str(folder)!r} does not exist (create it first)")
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"cannot write the file {str(path)!r}: it is a "
                                              "folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"cannot write {str(path)!r}: the folder "
                                            f"{str(folder)!r} is not writable; choose another "
                                            "destination")
    return path


def probe_folder(folder: str | os.PathLike) -> None:
    """Check that ``folder`` takes a new file by creating and removing one.

    This catches read-only file systems and full disks that permission bits do not show. The
    probe is named like every temporary file of this module (``.ddc-write-check.ddc-tmp-<pid>-
    <token>``), so a probe left by a process killed between creating and removing it is removed
    by the next write into the folder (:func:`clean_leftovers`).

    Parameters
    ----------
    folder : str or os.PathLike
        An existing folder.

    Raises
    ------
    OSError
        The file cannot be created (the error of the operating system).
    """
    probe = _temp_name(Path(folder) / "ddc-write-check")
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    os.unlink(probe)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Write a file completely or not at all, through a temporary path.

    Yields a new, empty, hidden file beside ``path`` (same suffix, so that writers that infer the
    format from it work); write it by name (``frame.to_parquet(tmp)``, ``fig.savefig(tmp)``).
    When the ``with`` block ends without error the file is synced and renamed over ``path``
    (:func:`os.replace`); if the block raises, it is removed and ``path`` is left as it was.

    The file gets the mode the umask gives new files, or the mode of the file it replaces.

    Parameters
    ----------
    path : str or os.PathLike
        The destination file; its folder must exist.

    Yields
    ------
    pathlib.Path
        The temporary file to write.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError
        If the destination cannot be written (see :func:`check_file_target`).
    """
    target = Path(path)
    folder = _folder_of(target)
    check_file_target(target)
    clean_leftovers(folder)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    tmp = _temp_name(target, suffix=target.suffix if len(target.suffix) <= 11 else "")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise _not_writable(target, folder, exc) from None
        raise
    os.close(fd)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(folder)


@contextmanager
def open_text(path: str | os.PathLike) -> Iterator[IO[str]]:
    """Open a text file (UTF-8, ``newline=""``) to be written completely or not at all.

    Parameters
    ----------
    path : str or os.PathLike
        The destination file; its folder must exist.

    Yields
    ------
    file object
        Write to it inside the ``with`` block (see :func:`atomic_path`).
    """
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        yield fh


def write_text(path: str | os.PathLike, text: str | Callable[[IO[str]], None]) -> Path:
    """Write a text file (UTF-8) completely or not at all.

    Parameters
    ----------
    path : str or os.PathLike
        The destination file; its folder must exist.
    text : str or callable
        The text, or a function writing it to an open file handle.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    with open_text(path) as fh:
        if callable(text):
            text(fh)
        else:
            fh.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write a binary file completely or not at all.

    Parameters
    ----------
    path : str or os.PathLike
        The destination file; its folder must exist.
    data : bytes
        The content.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    return Path(path)


# ------------------------------------------------------------------------------------ folders


def _entries(folder: Path) -> set[str]:
    """Every file, link and sub-folder under ``folder``, as relative POSIX paths."""
    out = set()
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        for name in dirs + files:
            out.add((rel / name).as_posix())
    return out


def _manifest_files(folder: Path) -> list[str] | None:
    """The files listed by ``folder``'s manifest, or None if it has no manifest of ours."""
    try:
        doc = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        return None
    files = doc.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return files


def _known(files: Sequence[str]) -> set[str]:
    known = {MANIFEST}
    for f in files:
        p = Path(f)
        known.add(p.as_posix())
        known.update(q.as_posix() for q in p.parents if str(q) != ".")
    return known


def _unknown(folder: Path) -> list[str] | None:
    """What in ``folder`` its manifest does not list ([] if nothing); None if no manifest."""
    entries = _entries(folder)
    if not entries:
        return []
    files = _manifest_files(folder)
    if files is None:
        return None
    return sorted(entries - _known(files))


def is_output_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder this package may replace: empty, or fully listed by its
    :data:`MANIFEST`.

    Parameters
    ----------
    path : str or os.PathLike
        A folder.

    Returns
    -------
    bool
    """
    path = Path(path)
    return path.is_dir() and _unknown(path) == []


def _refusal(path: Path, unknown: list[str] | None, when: str = "") -> UnsafeOverwriteError:
    if unknown is None:
        return UnsafeOverwriteError(
            f"{str(path)!r} exists and holds files that ddc-econ did not write (no {MANIFEST}); "
            "nothing was changed: write to a new or empty folder, or move them away first",
            path)
    shown = ", ".join(repr(u) for u in unknown[:8]) + (
        f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
    return UnsafeOverwriteError(
        f"{str(path)!r} holds {shown}{when}, which ddc-econ did not write (not in its "
        f"{MANIFEST}); nothing of it was changed or deleted: move "
        f"{'it' if len(unknown) == 1 else 'them'} away or write to another folder", path, unknown)


def check_folder_target(path: str | os.PathLike) -> Path:
    """Check, before any work, that :func:`atomic_directory` may write the folder ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The destination folder.

    Returns
    -------
    pathlib.Path
        The absolute path.

    Raises
    ------
    FileExistsError
        If ``path`` is a file.
    UnsafeOverwriteError
        If ``path`` holds files this package did not write (named in the message).
    PermissionError
        If the folder that would hold ``path`` is not writable.
    """
    path = Path(os.path.abspath(path))
    if os.path.lexists(path):
        if not path.is_dir() or path.is_symlink():
            raise FileExistsError(errno.EEXIST, f"{str(path)!r} exists and is not a folder; "
                                                "choose a folder for the output")
        unknown = _unknown(path)
        if unknown:
            raise _refusal(path, unknown)
        if unknown is None:
            raise _refusal(path, None)
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"cannot write {str(path)!r}: the folder "
                                            f"{str(parent)!r} is not writable; choose another "
                                            "destination")
    return path


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, f"cannot swap {str(a)!r} and {str(b)!r}: {os.strerror(err)}")


def _remove_listed(folder: Path) -> list[str]:
    """Delete what ``folder``'s manifest lists, then the emptied folders; return what is left."""
    files = _manifest_files(folder) or []
    for f in [*files, MANIFEST]:
        p = folder / f
        try:
            if p.is_file() or p.is_symlink():
                p.unlink()
        except FileNotFoundError:
            pass
    for root, dirs, _ in os.walk(folder, topdown=False):
        for d in dirs:
            try:
                os.rmdir(Path(root) / d)
            except OSError:
                pass
    try:
        os.rmdir(folder)
    except OSError:
        return sorted(_entries(folder))
    return []


def _write_manifest(folder: Path) -> list[str]:
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() or p.is_symlink())
    try:
        from ddc import __version__ as version
    except ImportError:  # pragma: no cover - the package is importable here
        version = None
    doc = {"format": MANIFEST_FORMAT,
           "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "package_version": version, "files": files}
    (folder / MANIFEST).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return files


def _sync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Write a folder completely or not at all, never touching files this package did not write.

    Yields a new hidden folder beside ``path``. When the ``with`` block ends without error, a
    :data:`MANIFEST` listing its files is added, everything is synced, and the folder takes the
    place of ``path``. If the block raises, the temporary folder is removed (with any parent
    folders this call created), ``path`` is left as it was and the exception propagates.

    ``path`` may not exist, be an empty folder, or be a folder every file of which its manifest
    lists (one written earlier by this function): that folder is then replaced as a whole. The
    check is made when the write starts and again at the swap, on the folder as it is then; a
    file that appeared in it meanwhile stops the swap with :class:`UnsafeOverwriteError` (the
    new folder is discarded, the old one left with the new file in it). On Linux the swap is one
    atomic exchange (``renameat2``); elsewhere two renames, and a swap cut between them is
    restored by the next write into the parent folder (:func:`clean_leftovers`).

    Parameters
    ----------
    path : str or os.PathLike
        The destination folder.

    Yields
    ------
    pathlib.Path
        The temporary folder to write into.

    Raises
    ------
    FileExistsError
        If ``path`` is a file.
    UnsafeOverwriteError
        If ``path`` holds files this package did not write, before the write or at the swap.
    PermissionError
        If the folder that would hold ``path`` is not writable.
    """
    path = check_folder_target(path)
    created: list[Path] = []
    parent = path.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    for folder in reversed(created):
        folder.mkdir()
    clean_leftovers(path.parent)
    tmp = _temp_name(path)
    try:
        os.mkdir(tmp, 0o777)
    except OSError as exc:
        for folder in created:
            _rmdir_quiet(folder)
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise _not_writable(path, path.parent, exc) from None
        raise
    try:
        yield tmp
        _write_manifest(tmp)
        if path.is_dir():
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        _sync_tree(tmp)
        _swap_in(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:
            _rmdir_quiet(folder)
        raise
    _fsync_dir(path.parent)


def _rmdir_quiet(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _swap_in(tmp: Path, path: Path) -> None:
    """Put the complete folder ``tmp`` at ``path`` (see :func:`atomic_directory`)."""
    if not os.path.lexists(path):
        try:
            os.rename(tmp, path)
            return
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        # something appeared at path meanwhile: check it as an existing folder
    unknown = _unknown(path) if path.is_dir() else None
    if unknown or unknown is None:
        if not path.is_dir():
            raise FileExistsError(errno.EEXIST, f"{str(path)!r} appeared during the write and "
                                                "is not a folder; nothing was changed")
        raise _refusal(path, unknown, when=" (added during the write)")
    if _exchange(tmp, path):
        # tmp now holds the old folder: check it again, as it was at the moment of the swap
        late = _unknown(tmp)
        if late:
            if not _exchange(tmp, path):  # pragma: no cover - it just worked
                raise OSError(f"cannot swap back {str(path)!r}")
            raise _refusal(path, late, when=" (added during the write)")
        left = _remove_listed(tmp)
        if left:  # pragma: no cover - a file added in the microseconds after the check
            warnings.warn(f"files appeared in {str(path)!r} while it was replaced: "
                          f"{left}; they are kept in {str(tmp)!r}", RuntimeWarning, stacklevel=4)
        return
    backup = _temp_name(path, kind="old")
    os.rename(path, backup)
    late = _unknown(backup)
    if late:
        os.rename(backup, path)
        raise _refusal(path, late, when=" (added during the write)")
    os.rename(tmp, path)
    left = _remove_listed(backup)
    if left:  # pragma: no cover - a file added in the microseconds after the check
        warnings.warn(f"files appeared in {str(path)!r} while it was replaced: {left}; they "
                      f"are kept in {str(backup)!r}", RuntimeWarning, stacklevel=4)


# ------------------------------------------------------------------------------------ JSON


def encode_json(obj: Any) -> Any:
    """Plain JSON values for ``obj``: non-finite numbers become ``"nan"``, ``"inf"``, ``"-inf"``.

    Dicts (string keys), lists, tuples, NumPy arrays and scalars, bools, ints, floats, strings and
    ``None`` are accepted.

    Parameters
    ----------
    obj : object
        The value.

    Returns
    -------
    object
        The same structure, JSON-ready under ``allow_nan=False``.

    Raises
    ------
    TypeError
        If a value (or a dict key) has no JSON form; the message gives its path.
    """
    return _encode(obj, "$")


def _encode(obj: Any, where: str) -> Any:
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isfinite(x):
            return x
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"JSON keys are strings; {where} has the key {k!r}")
            out[k] = _encode(v, f"{where}.{k}")
        return out
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"{where} is a {type(obj).__name__}, which has no JSON form")


def dumps_json(obj: Any) -> str:
    """Strict JSON text of ``obj`` (see :func:`encode_json`), indented, ending in a newline."""
    return json.dumps(encode_json(obj), indent=1, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as strict JSON, completely or not at all (:func:`dumps_json`,
    :func:`write_text`).

    Parameters
    ----------
    path : str or os.PathLike
        The destination file; its folder must exist.
    obj : object
        The document.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    text = dumps_json(obj)
    return write_text(path, text)


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Read a strict JSON file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    what : str
        What the file should be, for messages (``"results file"``).

    Returns
    -------
    object
        The document.

    Raises
    ------
    ValueError
        If the file is not valid UTF-8 JSON, or holds bare ``NaN``/``Infinity`` (write
        ``"nan"``/``"inf"`` instead); the message names the file, line and column.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not a {what}: it is not UTF-8 text ({exc})") from None

    def constant(name: str) -> float:
        raise ValueError(f"{str(path)!r} holds the bare constant {name}, which is not JSON; "
                         "write non-finite numbers as the strings \"nan\", \"inf\", \"-inf\"")

    try:
        return json.loads(text, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not a {what}: invalid JSON at line {exc.lineno}, "
                         f"column {exc.colno} ({exc.msg})") from None


_NUMBER_HELP = "a number, or the string \"nan\", \"inf\" or \"-inf\""


def json_float(value: Any, field: str, *, optional: bool = False) -> float | None:
    """Decode one number of a JSON document.

    Parameters
    ----------
    value : object
        The decoded JSON value: a number or ``"nan"``, ``"inf"``, ``"-inf"``.
    field : str
        Its name, for the message (``"params.values[2] (theta_ship)"``).
    optional : bool, default False
        Whether ``null`` is allowed (returned as ``None``).

    Returns
    -------
    float or None

    Raises
    ------
    JSONFieldError
        If the value is ``null`` (and not optional), a bool, another string or another type.
    """
    if value is None:
        if optional:
            return None
        raise JSONFieldError(f"{field} is null; expected {_NUMBER_HELP} (a missing value is "
                             "never read as NaN)", field)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise JSONFieldError(f"{field} is {json.dumps(value)[:60]}; expected {_NUMBER_HELP}",
                             field)
    if isinstance(value, str):
        if value not in ("nan", "inf", "-inf"):
            raise JSONFieldError(f"{field} is the string {value!r}; expected {_NUMBER_HELP}",
                                 field)
    return float(value)


def json_floats(values: Any, field: str, labels: Sequence[str] | None = None,
                length: int | None = None) -> list[float]:
    """Decode a JSON list of numbers (:func:`json_float` for each; ``null`` refused).

    Parameters
    ----------
    values : object
        The decoded JSON value, a list.
    field : str
        Its name, for messages.
    labels : sequence of str, optional
        A name for each entry, shown with its index (parameter names).
    length : int, optional
        The required length.

    Returns
    -------
    list of float

    Raises
    ------
    JSONFieldError
        If it is not a list, has the wrong length or an entry is bad (named).
    """
    if not isinstance(values, list):
        raise JSONFieldError(f"{field} is {json.dumps(values)[:60]}; expected a list of "
                             "numbers", field)
    if length is not None and len(values) != length:
        raise JSONFieldError(f"{field} has {len(values)} entries, expected {length}", field)
    out = []
    for i, v in enumerate(values):
        name = f"{field}[{i}]"
        if labels is not None and i < len(labels):
            name += f" ({labels[i]})"
        out.append(json_float(v, name))
    return out


def json_int(value: Any, field: str, *, minimum: int = 0, optional: bool = False) -> int | None:
    """Decode one integer of a JSON document (``null`` only if ``optional``).

    Raises
    ------
    JSONFieldError
        If it is not an integer >= ``minimum``.
    """
    if value is None and optional:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise JSONFieldError(f"{field} is {json.dumps(value)[:60]}; expected an integer >= "
                             f"{minimum}", field)
    return value


def json_str(value: Any, field: str, *, optional: bool = False) -> str | None:
    """Decode one string of a JSON document (``null`` only if ``optional``).

    Raises
    ------
    JSONFieldError
        If it is not a string.
    """
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise JSONFieldError(f"{field} is {json.dumps(value)[:60]}; expected a string", field)
    return value
