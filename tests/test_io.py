"""Tests of ddc.io: atomic files and folders, modes, leftovers, strict JSON, and kill -9.

The fault-injection tests fork the test process (a child inherits the objects built once here),
let the child write, and kill it with SIGKILL either after a random delay (fixed seed) or at
every rename/sync step of the write in turn; after each kill the destination must hold the old
version or the new one, complete, the user's files must be untouched, and the next write must
clean what the killed one left.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ddc
import ddc.io as dio
from ddc.io import (
    MANIFEST,
    JSONFieldError,
    UnsafeOverwriteError,
    atomic_directory,
    atomic_path,
    clean_leftovers,
    dumps_json,
    is_output_folder,
    json_float,
    read_json,
    write_json,
    write_text,
)
from estimators import EstimationResults, load_results

fork_only = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".ddc-" in p.name)


@pytest.fixture
def umask():
    """Set the umask for one test (restored after)."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda m: os.umask(m)
    os.umask(old)


@pytest.fixture(params=[True, False], ids=["exchange", "two-renames"])
def swap(request, monkeypatch):
    """Run a folder test with the atomic exchange (Linux) and with the two-rename fallback."""
    if not request.param:
        monkeypatch.setattr(dio, "_exchange", lambda a, b: False)
    return request.param


# ------------------------------------------------------------------------------------- files


def test_write_text_and_failure_leaves_the_old_file(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "one")
    assert target.read_text() == "one"

    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            Path(tmp).write_text("partial")
            raise RuntimeError("boom")
    assert target.read_text() == "one"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_temporary_keeps_the_suffix_for_writers_that_infer_the_format(tmp_path):
    with atomic_path(tmp_path / "t.parquet") as tmp:
        assert tmp.suffix == ".parquet" and tmp.name.startswith(".t.parquet.ddc-tmp-")
        pd.DataFrame({"a": [1, 2]}).to_parquet(tmp)
    assert pd.read_parquet(tmp_path / "t.parquet")["a"].tolist() == [1, 2]


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077], ids=["022", "002", "077"])
def test_new_files_and_folders_get_the_umask_mode(tmp_path, umask, mask):
    umask(mask)
    write_text(tmp_path / "f.txt", "x")
    assert stat.S_IMODE(os.stat(tmp_path / "f.txt").st_mode) == 0o666 & ~mask
    with atomic_directory(tmp_path / "out") as tmp:
        (tmp / "a.csv").write_text("1")
    assert stat.S_IMODE(os.stat(tmp_path / "out").st_mode) == 0o777 & ~mask
    for name in ("a.csv", MANIFEST):
        assert stat.S_IMODE(os.stat(tmp_path / "out" / name).st_mode) == 0o666 & ~mask


def test_overwriting_keeps_the_existing_mode(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "f.txt"
    target.write_text("old")
    os.chmod(target, 0o640)
    write_text(target, "new")
    assert target.read_text() == "new" and stat.S_IMODE(os.stat(target).st_mode) == 0o640
    with atomic_directory(tmp_path / "out") as tmp:
        (tmp / "a").write_text("1")
    os.chmod(tmp_path / "out", 0o750)
    with atomic_directory(tmp_path / "out") as tmp:
        (tmp / "a").write_text("2")
    assert stat.S_IMODE(os.stat(tmp_path / "out").st_mode) == 0o750


def test_missing_folder_and_directory_target_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist"):
        write_text(tmp_path / "nowhere" / "f.txt", "x")
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        write_text(tmp_path / "d", "x")


def test_read_only_file_system_is_a_one_line_error(tmp_path, monkeypatch):
    real_open, real_mkdir = os.open, os.mkdir

    def erofs(*args, **kwargs):
        raise OSError(30, "Read-only file system", str(args[0]))

    monkeypatch.setattr(dio.os, "open", lambda p, *a, **k: erofs(p) if ".ddc-tmp-" in str(p)
                        else real_open(p, *a, **k))
    monkeypatch.setattr(dio.os, "mkdir", lambda p, *a, **k: erofs(p) if ".ddc-tmp-" in str(p)
                        else real_mkdir(p, *a, **k))
    with pytest.raises(OSError, match="is not writable .*Read-only file system"):
        write_text(tmp_path / "f.txt", "x")
    with pytest.raises(OSError, match="is not writable"):
        with atomic_directory(tmp_path / "sub" / "out"):
            pass
    assert os.listdir(tmp_path) == []  # the parent it created is removed again


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            write_text(ro / "f.txt", "x")
        with pytest.raises(PermissionError, match="not writable"):
            dio.check_folder_target(ro / "out")
    finally:
        os.chmod(ro, 0o755)


# ------------------------------------------------------------------------------------- folders


def _write_folder(path: Path, files: dict[str, str]) -> None:
    with atomic_directory(path) as tmp:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)


def test_folder_is_replaced_as_a_whole_when_the_manifest_lists_everything(tmp_path, swap):
    out = tmp_path / "out"
    _write_folder(out, {"a.csv": "1", "sub/b.csv": "2"})
    doc = json.loads((out / MANIFEST).read_text())
    assert doc["files"] == ["a.csv", "sub/b.csv"] and is_output_folder(out)
    _write_folder(out, {"c.csv": "3"})
    assert sorted(os.listdir(out)) == [MANIFEST, "c.csv"]
    assert os.listdir(tmp_path) == ["out"]


@pytest.mark.parametrize("extra", ["thesis/t.tex", "notes.txt", "empty_dir/"],
                         ids=["nested-file", "file", "empty-folder"])
def test_folder_with_unlisted_files_is_never_replaced(tmp_path, swap, extra):
    out = tmp_path / "out"
    _write_folder(out, {"a.csv": "1"})
    p = out / extra
    p.parent.mkdir(parents=True, exist_ok=True)
    if extra.endswith("/"):
        p.mkdir(exist_ok=True)
    else:
        p.write_text("precious")
    with pytest.raises(UnsafeOverwriteError, match=repr(extra.split("/")[0])) as info:
        _write_folder(out, {"b.csv": "2"})
    assert extra.rstrip("/") in info.value.unknown
    assert (out / "a.csv").read_text() == "1" and not (out / "b.csv").exists()
    if not extra.endswith("/"):
        assert p.read_text() == "precious"
    assert _leftovers(tmp_path) == []


def test_folder_without_manifest_is_refused(tmp_path, swap):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(UnsafeOverwriteError, match="did not write"):
        _write_folder(mine, {"a": "1"})
    assert os.listdir(mine) == ["thesis.tex"]
    with pytest.raises(FileExistsError, match="not a folder"):
        _write_folder(mine / "thesis.tex", {"a": "1"})


def test_file_added_during_the_write_stops_the_swap(tmp_path, swap):
    out = tmp_path / "out"
    _write_folder(out, {"a.csv": "old"})
    with pytest.raises(UnsafeOverwriteError, match="'late.txt' \\(added during the write\\)"):
        with atomic_directory(out) as tmp:
            (tmp / "a.csv").write_text("new")
            (out / "late.txt").write_text("the user's")  # appears while the new one is written
    assert (out / "late.txt").read_text() == "the user's"
    assert (out / "a.csv").read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_file_added_at_the_swap_is_found_in_the_swapped_out_folder(tmp_path, monkeypatch):
    # the second check: the file appears after the first check, just before the exchange
    out = tmp_path / "out"
    _write_folder(out, {"a.csv": "old"})
    real = dio._exchange
    calls = []

    def late(a, b):
        if not calls:
            (out / "late.txt").write_text("the user's")
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(dio, "_exchange", late)
    with pytest.raises(UnsafeOverwriteError, match="late.txt"):
        _write_folder(out, {"a.csv": "new"})
    assert (out / "late.txt").read_text() == "the user's" and (out / "a.csv").read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_a_folder_appearing_during_the_write_is_checked(tmp_path, swap):
    out = tmp_path / "out"
    with pytest.raises(UnsafeOverwriteError, match="did not write"):
        with atomic_directory(out) as tmp:
            (tmp / "a").write_text("1")
            out.mkdir()
            (out / "theirs.txt").write_text("x")
    assert os.listdir(out) == ["theirs.txt"]


# ------------------------------------------------------------------------------------- leftovers


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_dead_writers_are_cleaned_on_the_next_write(tmp_path):
    dead, alive = _dead_pid(), os.getppid()
    (tmp_path / f".r.json.ddc-tmp-{dead}-0123abcd.json").write_text("{partial")
    folder = tmp_path / f".out.ddc-tmp-{dead}-89abcdef"
    folder.mkdir()
    (folder / "a.csv").write_text("partial")
    running = tmp_path / f".r.json.ddc-tmp-{alive}-0123abcd"
    running.write_text("another process is writing this")
    user = tmp_path / ".out.tmp"  # a user's file with a similar name is not ours
    user.write_text("mine")
    write_text(tmp_path / "r.json", "{}")
    assert sorted(os.listdir(tmp_path)) == sorted(["r.json", running.name, user.name])


def test_a_swap_cut_between_its_renames_is_restored(tmp_path):
    out = tmp_path / "out"
    _write_folder(out, {"a.csv": "old"})
    backup = tmp_path / f".out.ddc-old-{_dead_pid()}-0123abcd"
    os.rename(out, backup)  # killed after the first rename of the two-rename swap
    assert clean_leftovers(tmp_path) == [backup]
    assert (out / "a.csv").read_text() == "old" and os.listdir(tmp_path) == ["out"]


# ------------------------------------------------------------------------------------- JSON


def test_json_writes_non_finite_numbers_explicitly(tmp_path):
    doc = {"a": float("nan"), "b": [np.inf, -np.inf, np.float64(1.5)], "c": np.arange(2),
           "d": None}
    text = dumps_json(doc)
    assert json.loads(text) == {"a": "nan", "b": ["inf", "-inf", 1.5], "c": [0, 1], "d": None}
    write_json(tmp_path / "d.json", doc)
    assert read_json(tmp_path / "d.json")["b"] == ["inf", "-inf", 1.5]
    with pytest.raises(TypeError, match=r"\$.x is a set"):
        dumps_json({"x": {1}})


@pytest.mark.parametrize(("text", "match"), [
    pytest.param('{"a": NaN}', "bare constant NaN", id="bare-nan"),
    pytest.param('{"a": 1,\n "b": }', "line 2, column", id="syntax"),
])
def test_read_json_names_the_problem(tmp_path, text, match):
    (tmp_path / "x.json").write_text(text)
    with pytest.raises(ValueError, match=match):
        read_json(tmp_path / "x.json")


@pytest.mark.parametrize(("value", "match"), [
    pytest.param(None, "is null", id="null"),
    pytest.param("abc", "is the string 'abc'", id="string"),
    pytest.param(True, "is true", id="bool"),
    pytest.param([1], r"is \[1\]", id="list"),
])
def test_json_float_refuses_and_names_the_field(value, match):
    with pytest.raises(JSONFieldError, match=f"params.values\\[1\\] \\(b\\) {match}"):
        json_float(value, "params.values[1] (b)")
    assert json_float("nan", "x") != json_float("nan", "x")
    assert json_float(None, "x", optional=True) is None


def _results(**kw) -> EstimationResults:
    args = dict(model=None, estimator="NFXP",
                params=pd.Series([0.5, -1.0], index=["a", "b"]),
                hessian=-np.array([[4.0, 1.0], [1.0, 2.0]]), scores=None, groups=None,
                loglik=-10.0, nobs=100, converged=True)
    args.update(kw)
    return EstimationResults(**args)


@pytest.mark.parametrize(("edit", "field"), [
    pytest.param(lambda d: d["params"]["values"].__setitem__(1, None),
                 r"params.values\[1\] \(b\) is null", id="null-param"),
    pytest.param(lambda d: d["params"]["values"].__setitem__(0, "0.5x"),
                 r"params.values\[0\] \(a\) is the string '0.5x'", id="bad-param"),
    pytest.param(lambda d: d["hessian"][1].__setitem__(0, None),
                 r"hessian\[1\] \(b\)\[0\] \(a\) is null", id="null-hessian"),
    pytest.param(lambda d: d.__setitem__("nobs", -3), "nobs is -3", id="bad-nobs"),
    pytest.param(lambda d: d.__setitem__("converged", "yes"), "converged is \"yes\"",
                 id="bad-flag"),
    pytest.param(lambda d: d["params"]["values"].pop(), "params.values has 1 entries",
                 id="short"),
])
def test_hand_edited_results_name_the_field(tmp_path, edit, field):
    path = _results().save(tmp_path / "r.json")
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(JSONFieldError, match=field):
        load_results(path)


# ------------------------------------------------------------------------------------- kill -9


def _fork(action) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            action()
            code = 0
        finally:
            os._exit(code)
    return pid


def _wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return status


def _kill_at_random(action, check, n: int, seed: int) -> int:
    """Run ``action`` in a child killed after random delays; ``check()`` after each kill.

    The delays are drawn uniformly over the time a complete forked write takes (measured
    first), so they fall before, inside and after the write. Returns the kills that landed
    before the child finished.
    """
    start = time.perf_counter()
    assert os.WEXITSTATUS(_wait(_fork(action))) == 0
    span = time.perf_counter() - start
    check()
    rng = np.random.default_rng(seed)
    landed = 0
    for delay in rng.uniform(0.0, 1.2 * span, size=n):
        pid = _fork(action)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        status = _wait(pid)
        landed += os.WIFSIGNALED(status)
        check()
    return landed


# the steps that change what is on disk (the syncs between them change nothing a reader sees)
_STEPS = ("replace", "rename", "_exchange", "_write_manifest", "_remove_listed")


def _kill_at_every_step(action, check) -> int:
    """Kill the child at the k-th rename/sync step of the write, k = 0, 1, ... until it
    completes; ``check()`` after each. Returns the number of steps."""
    k = 0
    while True:
        counter = {"n": 0}

        def child(k=k, counter=counter):
            for name in _STEPS:
                owner = dio.os if hasattr(dio.os, name) else dio
                real = getattr(owner, name)

                def step(*a, real=real, **kw):
                    if counter["n"] == k:
                        os.kill(os.getpid(), signal.SIGKILL)
                    counter["n"] += 1
                    return real(*a, **kw)

                setattr(owner, name, step)  # in the child only
            action()

        status = _wait(_fork(child))
        check()
        if not os.WIFSIGNALED(status):
            assert os.WEXITSTATUS(status) == 0
            return k
        k += 1


def _check_folder(out: Path, expected: set[str], user: Path):
    """After a kill: the folder is complete (the old or the new write), the user's file is
    intact, and the next write cleans every leftover."""
    assert user.read_text() == "precious"
    if not out.exists():  # only between the two renames of the fallback swap
        assert any(".ddc-old-" in n for n in os.listdir(out.parent))
        clean_leftovers(out.parent)
    names = set(os.listdir(out))
    assert names == expected | {MANIFEST}, names
    assert set(json.loads((out / MANIFEST).read_text())["files"]) == expected


@pytest.fixture(scope="module")
def report():
    from simulations import counterfactual

    model = ddc.models.membership()
    return counterfactual(model, model.true_params, scenarios="default", n_draws=0)


@pytest.fixture
def quick_figures(monkeypatch, report):
    """PNG rendering is slow and not what these tests are about."""
    monkeypatch.setattr(type(report), "figure_pngs", lambda self, dpi=110: dict.fromkeys(
        ["retention.png", "changes.png", "welfare_by_market.png"], b"\x89PNG\r\n\x1a\n"))


@fork_only
def test_kill_report_save(report, quick_figures, tmp_path, swap, monkeypatch):
    out = tmp_path / "report"
    user = tmp_path / "thesis.tex"
    user.write_text("precious")
    report.save(out)
    expected = set(os.listdir(out)) - {MANIFEST}

    def check():
        _check_folder(out, expected, user)

    landed = _kill_at_random(lambda: report.save(out), check, n=4, seed=11)
    assert landed >= 1
    steps = _kill_at_every_step(lambda: report.save(out), check)
    assert steps >= 3
    report.save(out)
    assert _leftovers(tmp_path) == [] and user.read_text() == "precious"


@pytest.fixture(scope="module")
def cross():
    from estimators import CCP
    from estimators.crossval import cross_validate
    from simulations import simulate

    model = ddc.models.membership()
    panel = simulate(model, model.true_params, n_customers=300, n_periods=12, seed=0)
    return cross_validate(model, panel, estimators={"CCP": CCP(model).fit(panel)},
                          truth=model.true_params)


class _Figure:
    def savefig(self, path, **kwargs):
        Path(path).write_bytes(b"\x89PNG\r\n\x1a\n")


@fork_only
def test_kill_cross_validation_save(cross, tmp_path, monkeypatch):
    from estimators.crossval import CrossValidation

    monkeypatch.setattr(CrossValidation, "figure", lambda self, ncols=3: _Figure())
    out = tmp_path / "cv"
    user = tmp_path / "notes.txt"
    user.write_text("precious")
    cross.save(out)
    expected = set(os.listdir(out)) - {MANIFEST}

    def check():
        _check_folder(out, expected, user)

    assert _kill_at_random(lambda: cross.save(out), check, n=5, seed=12) >= 1
    _kill_at_every_step(lambda: cross.save(out), check)
    (out / "thesis").mkdir()
    (out / "thesis" / "t.tex").write_text("precious")
    with pytest.raises(UnsafeOverwriteError, match="'thesis'"):
        cross.save(out)
    assert (out / "thesis" / "t.tex").read_text() == "precious"


@fork_only
def test_kill_results_save(tmp_path):
    old, new = _results(loglik=-10.0), _results(loglik=-9.0)
    path = tmp_path / "r.json"
    old.save(path)
    mode = os.stat(path).st_mode

    def check():
        assert load_results(path).loglik in (-10.0, -9.0)
        assert os.stat(path).st_mode == mode

    _kill_at_random(lambda: new.save(path), check, n=5, seed=13)
    _kill_at_every_step(lambda: new.save(path), check)
    new.save(path)
    assert _leftovers(tmp_path) == [] and load_results(path).loglik == -9.0


@fork_only
def test_kill_cli_write(tmp_path, capsys):
    from simulations.cli import main as cli_main

    path = tmp_path / "panel.csv"
    argv = ["simulate", "--model", "rust_bus", "--n-customers", "20", "--n-periods", "10",
            "--seed", "0", "--out", str(path)]
    assert cli_main(argv) == 0
    want = pd.read_csv(path)

    def check():
        pd.testing.assert_frame_equal(pd.read_csv(path), want)

    def action():
        assert cli_main(argv) == 0

    _kill_at_random(action, check, n=4, seed=14)
    _kill_at_every_step(action, check)
    assert cli_main(argv) == 0
    assert _leftovers(tmp_path) == []


def test_probe_of_a_killed_writer_is_cleaned_by_the_next_write(tmp_path, monkeypatch):
    """The writability probe of a process killed between creating and removing it is a leftover
    like any other (the CLI's --out check once left ``.ddc-write-check.*`` files behind)."""
    def probe_and_die():
        monkeypatch.setattr(dio.os, "unlink", lambda path: None)  # killed before the unlink
        dio.probe_folder(tmp_path)

    assert os.WEXITSTATUS(_wait(_fork(probe_and_die))) == 0
    assert len(_leftovers(tmp_path)) == 1
    write_text(tmp_path / "out.txt", "x")
    assert _leftovers(tmp_path) == []
