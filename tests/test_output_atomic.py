"""The -o folder is replaced atomically (issue 23): killed or failing at any point, a run
leaves the complete earlier plan or the complete new one, never a mix; symbolic links in
or at -o are refused, never followed.

Before: -o was cleared and written in place, so a kill left the earlier RUNBOOK.md beside
new step folders, or a plan.json cut short; a linked RUNBOOK.md overwrote its target.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from migrate.cli import main
from migrate.emit import manifests, output
from tests.conftest import REPO, SAMPLES

NEW_INPUT = str(SAMPLES / "istio" / "shop")
OLD_INPUT = str(SAMPLES / "istio" / "bookinfo")


def plan(out: Path, path: str = NEW_INPUT):
    return CliRunner().invoke(main, ["plan", "--from", "istio", "--to", "linkerd", "-f", path,
                                     "-o", str(out), "-q", "--no-verify"])


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder below root."""
    return {p.relative_to(root).as_posix(): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """An earlier plan (bookinfo) to copy into -o, and both plans' trees."""
    base = tmp_path_factory.mktemp("plans")
    assert plan(base / "old", OLD_INPUT).exit_code == 0
    assert plan(base / "new", NEW_INPUT).exit_code == 0
    old, new = tree(base / "old"), tree(base / "new")
    assert old != new and "plan.json" in old and "RUNBOOK.md" in new
    return base / "old", old, new


def with_old_plan(tmp_path: Path, source: Path) -> Path:
    out = tmp_path / "parent" / "out"
    out.parent.mkdir(parents=True)
    shutil.copytree(source, out, symlinks=True)
    return out


def beside(out: Path) -> list[str]:
    """What else is in -o's parent."""
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name)


# --- failures inside the process ---------------------------------------------------------

@pytest.mark.parametrize("at", [0, 7, 40])
def test_a_failing_file_write_leaves_the_earlier_plan(tmp_path: Path, plans, monkeypatch, at):
    source, old, _ = plans
    out = with_old_plan(tmp_path, source)
    real, calls = manifests._write, [0]

    def full_disk(path: Path, text: str) -> None:
        calls[0] += 1
        if calls[0] > at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, text)

    monkeypatch.setattr(manifests, "_write", full_disk)
    result = plan(out)
    assert result.exit_code == 1 and "No space left on device" in result.stderr
    assert tree(out) == old and beside(out) == []


def test_a_writer_raising_leaves_the_earlier_plan(tmp_path: Path, plans, monkeypatch):
    source, old, _ = plans
    out = with_old_plan(tmp_path, source)

    def broken(plan, path: Path) -> None:
        path.write_text("# Migration runbook: half")
        raise RuntimeError("writer bug")

    monkeypatch.setattr(output, "write_runbook", broken)
    result = plan(out)
    assert result.exit_code == 1 and "writer bug" in result.stderr
    assert tree(out) == old and beside(out) == []


def test_without_an_atomic_swap_a_failed_rename_puts_the_earlier_plan_back(
        tmp_path: Path, plans, monkeypatch):
    source, old, new = plans
    out = with_old_plan(tmp_path, source)
    monkeypatch.setattr(output, "_exchange", lambda a, b: False)
    rename, calls = os.rename, []

    def second_fails(a, b) -> None:
        calls.append((Path(a).name, Path(b).name))
        if len(calls) == 2:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(b))
        rename(a, b)

    monkeypatch.setattr(output.os, "rename", second_fails)
    result = plan(out)
    assert result.exit_code == 1 and "Input/output error" in result.stderr
    assert calls[0][0] == "out" and calls[0][1].startswith(".out.meshmigrate-old-")
    assert tree(out) == old and beside(out) == []
    monkeypatch.setattr(output.os, "rename", rename)
    assert plan(out).exit_code == 0 and tree(out) == new and beside(out) == []


@pytest.mark.parametrize("swap", ["exchange", "fallback"])
def test_a_complete_plan_replaces_the_earlier_one_and_nothing_is_left_beside_it(
        tmp_path: Path, plans, monkeypatch, swap):
    source, _, new = plans
    out = with_old_plan(tmp_path, source)
    if swap == "fallback":
        monkeypatch.setattr(output, "_exchange", lambda a, b: False)
    assert plan(out).exit_code == 0
    assert tree(out) == new and beside(out) == []
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask  # as mkdir would make it


# --- killed at any point -----------------------------------------------------------------

def run_killed(out: Path, at: int, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.killpoint", str(at), mode, "plan", "--from", "istio",
         "--to", "linkerd", "-f", NEW_INPUT, "-o", str(out), "-q", "--no-verify"],
        cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("mode", ["exchange", "fallback"])
def test_killed_at_random_points_the_folder_holds_one_whole_plan(tmp_path: Path, plans, mode):
    """SIGKILL at random file writes (halfway through the file) and at every rename: -o then
    holds the earlier plan or the new one, byte for byte; the next run recovers and ends
    with the new plan and nothing beside it."""
    source, old, new = plans
    counted = run_killed(with_old_plan(tmp_path / "count", source), -1, mode)
    assert counted.returncode == 0, counted.stderr
    events = int(counted.stdout.split("events=")[1])
    files = sum(1 for v in new.values() if v is not None)
    renames = events - files  # after every file: the swap's renames and the removal
    assert renames == (3 if mode == "exchange" else 4)
    rng = random.Random()
    seed = rng.randrange(2**32)
    points = sorted(random.Random(seed).sample(range(files), 4)) + list(range(files, events))
    for at in points:
        out = with_old_plan(tmp_path / f"at-{at}", source)
        killed = run_killed(out, at, mode)
        assert killed.returncode == -signal.SIGKILL, (seed, at, killed.stderr)
        if out.exists():
            assert tree(out) in (old, new), (seed, at)
            # The new plan is in place once the swap (or the second rename) is done.
            done = files + (1 if mode == "exchange" else 2)
            assert tree(out) == (new if at >= done else old), (seed, at)
        else:  # only between the two renames of the fallback
            assert (mode, at) == ("fallback", files + 1), (seed, at)
            assert output.recover(out) and tree(out) == old
        assert plan(out).exit_code == 0, (seed, at)
        assert tree(out) == new and beside(out) == [], (seed, at)


def test_sigkill_after_a_random_delay_while_writing(tmp_path: Path, plans):
    """The real command, killed from outside at a random moment once it starts writing
    (anything new beside -o, or -o's steps/ removed or replaced)."""
    source, old, new = plans
    for attempt in range(3):
        out = with_old_plan(tmp_path / str(attempt), source)
        steps = (out / "steps").stat().st_ino
        process = subprocess.Popen(
            [sys.executable, "-m", "migrate", "plan", "--from", "istio", "--to", "linkerd",
             "-f", NEW_INPUT, "-o", str(out), "-q", "--no-verify"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while process.poll() is None and beside(out) == [] and _inode(out / "steps") == steps:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        time.sleep(random.uniform(0, 0.03))
        process.send_signal(signal.SIGKILL)
        process.wait()
        output.recover(out)  # what the next run does first
        assert tree(out) in (old, new)
        assert plan(out).exit_code == 0 and tree(out) == new and beside(out) == []


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


# --- what an interrupted run leaves ------------------------------------------------------

def test_the_next_run_restores_a_plan_set_aside_and_removes_unfinished_ones(
        tmp_path: Path, plans):
    source, old, new = plans
    out = with_old_plan(tmp_path, source)
    aside = out.parent / ".out.meshmigrate-old-0123456789abcdef"
    out.rename(aside)
    unfinished = out.parent / ".out.meshmigrate-new-fedcba9876543210"
    (unfinished / "steps").mkdir(parents=True)
    (unfinished / "plan.json").write_text('{"source": ')
    foreign = [out.parent / ".out.meshmigrate-new-notours", out.parent / ".out.keep"]
    for path in foreign:
        path.mkdir()
    assert output.recover(out) == [
        f"{out}: restored the earlier plan an interrupted run had set aside ({aside.name})"]
    assert tree(out) == old and beside(out) == sorted(p.name for p in foreign)
    result = plan(out)
    assert result.exit_code == 0 and tree(out) == new


def test_a_run_after_a_finished_swap_removes_what_was_on_its_way_out(tmp_path: Path, plans):
    source, old, new = plans
    out = with_old_plan(tmp_path, source)
    for state in ("old", "trash", "new"):
        shutil.copytree(source, out.parent / f".out.meshmigrate-{state}-{'a' * 16}")
    result = plan(out)
    assert result.exit_code == 0 and "restored" not in result.stderr
    assert tree(out) == new and beside(out) == []


def test_two_plans_set_aside_and_no_folder_is_refused(tmp_path: Path, plans):
    source, _, _ = plans
    parent = tmp_path / "parent"
    for token in ("a" * 16, "b" * 16):
        shutil.copytree(source, parent / f".out.meshmigrate-old-{token}")
    result = plan(parent / "out")
    assert result.exit_code == 1
    assert "2 earlier plans were set aside" in result.stderr and "a" * 16 in result.stderr
    assert sorted(os.listdir(parent)) == [f".out.meshmigrate-old-{'a' * 16}",
                                          f".out.meshmigrate-old-{'b' * 16}"]


# --- symbolic links and folders that hold something else -------------------------------

def test_an_output_folder_that_is_a_symbolic_link_is_refused(tmp_path: Path, plans):
    source, old, _ = plans
    real = with_old_plan(tmp_path, source)
    link = tmp_path / "link"
    link.symlink_to(real)
    result = plan(link)
    assert result.exit_code == 2 and "is a symbolic link" in result.stderr
    assert link.is_symlink() and tree(real) == old
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    assert plan(dangling).exit_code == 2 and not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("where", ["RUNBOOK.md", "steps", "steps/01-move-x",
                                   "steps/00-prerequisites/kustomization.yaml"])
def test_a_symbolic_link_inside_the_output_folder_is_refused(tmp_path: Path, plans, where):
    source, _, _ = plans
    out = with_old_plan(tmp_path, source)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    target = elsewhere / "keep.txt" if where.endswith((".md", ".yaml")) else elsewhere
    link = out / where
    if link.is_dir():
        shutil.rmtree(link)
    elif link.exists():
        link.unlink()
    link.symlink_to(target)
    before = tree(out)
    result = plan(out)
    assert result.exit_code == 2, result.stderr
    assert f"{link} is a symbolic link inside the -o folder" in result.stderr
    assert tree(elsewhere) == {"keep.txt": b"mine"} and tree(out) == before
    assert beside(out) == []


def test_a_folder_holding_something_else_is_still_refused(tmp_path: Path, plans):
    source, _, _ = plans
    out = with_old_plan(tmp_path, source)
    (out / "notes.txt").write_text("mine")
    before = tree(out)
    result = plan(out)
    assert result.exit_code == 1 and "holds no meshmigrate plan" in result.stderr
    assert tree(out) == before and beside(out) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    assert plan(empty).exit_code == 0 and (empty / "plan.json").is_file()
