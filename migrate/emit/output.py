"""The ``-o`` folder, written atomically: it holds the previous complete plan or the new
complete plan, never a mix and never a file cut short.

How (docs/security.md says the same for users):

1. The folder's parent is locked (``flock`` on the parent folder itself, so nothing is
   left behind), so two runs writing beside each other take turns and never remove each
   other's work.
2. What an interrupted run left beside ``-o`` is recovered (:func:`recover`).
3. An existing ``-o`` is checked: it must be a real folder (not a symbolic link), hold only
   a plan (``plan.json``, with ``RUNBOOK.md`` and ``steps/`` at most), and hold no
   symbolic link anywhere. Nothing in it is ever opened for writing or followed.
4. The whole plan is written into a new sibling folder, ``.<name>.meshmigrate-new-<token>``
   (same parent, so the same file system and a rename cannot copy).
5. Only once every file is written and closed, the new folder takes the place of ``-o``:
   - no ``-o`` yet, or an empty one: one ``rename(2)``;
   - an earlier plan: on Linux one ``renameat2(RENAME_EXCHANGE)`` swaps the two folders
     atomically; where that is not available, ``-o`` is renamed aside to
     ``.<name>.meshmigrate-old-<token>`` and the new folder renamed in.
   The earlier plan is then renamed to ``.<name>.meshmigrate-trash-<token>`` and removed.

A failure while writing (an exception, a full disk, Ctrl-C) removes the new folder and
leaves ``-o`` as it was. A process killed (SIGKILL, power cut aside: see below) leaves at
most these dot-folders, which the next run sorts out before writing:

- ``-new-`` and ``-trash-`` folders are removed (an unfinished plan, an earlier plan on its
  way out);
- an ``-old-`` folder is a complete earlier plan (it is only ever made by one rename of a
  checked ``-o``, and emptied only once renamed to ``-trash-``). When ``-o`` exists, the
  swap it belonged to finished, and it is removed; when ``-o`` is missing (a kill between
  the two renames of step 5), it is renamed back to ``-o`` before anything else, so the
  run then replaces it as usual. Two ``-old-`` folders and no ``-o`` can only come from
  hands other than meshmigrate's: the run refuses and names them.

Files are not flushed to disk (fsync): a killed process loses nothing the kernel was given,
but a power cut right after a run may, depending on the file system, lose file contents
the kernel had not yet written.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
import stat
from pathlib import Path
from typing import Callable, Iterator

from migrate.emit.manifests import write_steps
from migrate.emit.planjson import write_plan
from migrate.emit.runbook import write_runbook
from migrate.errors import MigrateError, UsageError
from migrate.plan.model import Plan

OWN = ("RUNBOOK.md", "plan.json", "steps")
"""What a plan folder holds."""

_TAG = "meshmigrate"
_STATES = ("new", "old", "trash")


def write_output(plan: Plan, output: Path) -> list[str]:
    """Write RUNBOOK.md, plan.json and steps/ as the folder ``output``, atomically.

    Returns notes for the user (what was recovered from an interrupted run).
    """
    def fill(folder: Path) -> None:
        write_steps(plan, folder)
        write_plan(plan, folder / "plan.json")
        write_runbook(plan, folder / "RUNBOOK.md")

    return write_folder(output, fill)


def write_folder(output: Path, fill: Callable[[Path], None]) -> list[str]:
    """Make the folder ``output`` hold exactly what ``fill`` writes into the empty folder it
    is given, or leave ``output`` as it was if ``fill`` raises (see the module's steps).

    Raises :class:`UsageError` (exit 2) for a symbolic link at or inside ``output`` and
    :class:`MigrateError` for an ``output`` that holds something other than a plan.
    """
    target = _absolute(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent):
        notes = recover(target)
        check_existing(target)
        staging = _new_folder(target)
        try:
            fill(staging)
            _publish(staging, target)
        except BaseException:
            with contextlib.suppress(OSError):  # the first error is the one to report
                _remove(staging)
            raise
    return notes


def check_existing(target: Path) -> None:
    """Refuse an ``-o`` that is a symbolic link, is not a folder, holds anything but a
    plan, or holds a symbolic link anywhere; accept a missing or empty one."""
    if target.is_symlink():
        raise UsageError(f"{target} is a symbolic link; meshmigrate never writes through "
                         "one: give the folder it points to, or another -o")
    if not target.exists():
        return
    if not target.is_dir():
        raise MigrateError(f"{target} is not a folder; choose another -o folder")
    entries = {p.name for p in target.iterdir()}
    if entries and not (entries <= set(OWN) and "plan.json" in entries):
        raise MigrateError(f"{target} is not empty and holds no meshmigrate plan; "
                           "choose another -o folder")
    link = _first_link(target)
    if link is not None:
        raise UsageError(f"{link} is a symbolic link inside the -o folder {target}; "
                         "meshmigrate never follows one: remove it, or choose another -o")


def recover(target: Path) -> list[str]:
    """Sort out what an interrupted run left beside ``target`` (see the module docstring);
    returns what was done that the user should hear of."""
    leftovers: dict[str, list[Path]] = {state: [] for state in _STATES}
    pattern = re.compile(rf"\.{re.escape(target.name)}\.{_TAG}-({'|'.join(_STATES)})-"
                         r"[0-9a-f]{16}")
    for entry in os.scandir(target.parent):
        match = pattern.fullmatch(entry.name)
        if match:
            leftovers[match.group(1)].append(Path(entry.path))
    notes: list[str] = []
    old = sorted(leftovers["old"])
    if not os.path.lexists(target) and old:
        if len(old) > 1:
            raise MigrateError(
                f"{target} is missing and {len(old)} earlier plans were set aside beside it "
                f"({', '.join(p.name for p in old)}); meshmigrate made only one: rename the "
                f"one to keep to {target.name} and remove the others")
        if old[0].is_symlink() or not old[0].is_dir():
            raise MigrateError(f"{old[0]} is not a folder meshmigrate set aside; remove it")
        os.rename(old[0], target)
        notes.append(f"{target}: restored the earlier plan an interrupted run had set aside "
                     f"({old[0].name})")
        old = []
    for path in sorted(leftovers["new"] + leftovers["trash"] + old):
        _remove(path)
    return notes


def _absolute(output: Path) -> Path:
    # abspath, not resolve: a symbolic link at -o must be seen, never followed.
    target = Path(os.path.abspath(output))
    if not target.name:
        raise UsageError(f"{output}: -o must name a folder below the root")
    return target


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder`` itself, where the platform has one."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, the rest holds for one run at a time
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _first_link(folder: Path) -> str | None:
    """The first symbolic link below ``folder`` (in sorted order), or None."""
    stack = [folder]
    while stack:
        with os.scandir(stack.pop()) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            if entry.is_symlink():
                return entry.path
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
    return None


def _new_folder(target: Path) -> Path:
    """A new, empty sibling folder of ``target`` (made with the umask's permissions, as
    ``-o`` itself would be, unlike ``tempfile.mkdtemp``'s 0700)."""
    while True:
        path = _sibling(target, "new", secrets.token_hex(8))
        try:
            path.mkdir()
            return path
        except FileExistsError:  # pragma: no cover - 64 random bits
            continue


def _sibling(target: Path, state: str, token: str) -> Path:
    return target.parent / f".{target.name}.{_TAG}-{state}-{token}"


def _token(staging: Path) -> str:
    return staging.name.rpartition("-")[2]


def _publish(staging: Path, target: Path) -> None:
    """Put the complete folder ``staging`` in the place of ``target`` (module steps 5)."""
    if not os.path.lexists(target) or (target.is_dir() and not any(target.iterdir())):
        # rename(2) replaces an empty folder in one step, and fails on one that is not
        # empty (https://man7.org/linux/man-pages/man2/rename.2.html).
        os.rename(staging, target)
        return
    token = _token(staging)
    if _exchange(staging, target):
        old = staging  # now holds the earlier plan
    else:
        old = _sibling(target, "old", token)
        os.rename(target, old)
        try:
            os.rename(staging, target)
        except BaseException:
            os.rename(old, target)  # the earlier plan back in place
            raise
    trash = _sibling(target, "trash", token)
    os.rename(old, trash)
    _remove(trash)


AT_FDCWD = -100
RENAME_EXCHANGE = 2
"""From linux/fcntl.h and linux/fs.h (renameat2 is Linux 3.15+, glibc 2.28+:
https://man7.org/linux/man-pages/man2/rename.2.html)."""


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one step (``renameat2(RENAME_EXCHANGE)``); False where the
    system or the file system cannot, so the caller falls back to two renames."""
    function = _renameat2()
    if function is None:
        return False
    if function(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


_RENAMEAT2: list[Callable[..., int] | None] = []


def _renameat2() -> Callable[..., int] | None:
    """libc's renameat2, looked up once (None on other systems or an older libc)."""
    if not _RENAMEAT2:
        function = None
        try:
            function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
        except OSError:  # pragma: no cover - no C library to load
            pass
        if function is not None:
            function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                 ctypes.c_uint]
            function.restype = ctypes.c_int
        _RENAMEAT2.append(function)
    return _RENAMEAT2[0]


def _remove(path: Path) -> None:
    """Remove a folder this module made, never following a link (a link is unlinked)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)  # removes links inside, never what they point to
    else:
        os.unlink(path)
