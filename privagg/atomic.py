"""Atomic outputs: a reader sees the old file (or folder) or the complete new one, never half of one.

One module for every output privagg writes: single files (tables, records,
reports, figures, the JSON export of a ledger) through :func:`atomic_write`,
and whole folders (a World, an audit's report and its releases) through
:func:`publish_directory`, which builds the folder beside its destination and
swaps it in with renames.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    Readers see either the old file or the complete new one, never a partial one.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> atomic_write(out, lambda tmp: tmp.write_text("hello")).read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    # mkstemp creates the file readable by its owner only; give it the permissions of any new file.
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def can_create_in(folder: str | Path) -> bool:
    """Whether a file can really be created in ``folder`` (tried, then removed): unlike :func:`os.access`,
    this also answers for read-only or special file systems and for root."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".privagg-probe-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    Path(tmp).unlink(missing_ok=True)
    return True


def staging_prefix(target: Path) -> str:
    """Name prefix of the staging folders built beside ``target`` (so a later run can find and remove them)."""
    return f".{target.name}.staging-"


def remove_stale_staging(target: Path) -> None:
    """Remove staging folders that an interrupted earlier run left beside ``target``."""
    if not target.parent.is_dir():
        return
    for old in target.parent.glob(staging_prefix(target) + "*"):
        shutil.rmtree(old, ignore_errors=True)
    for old in target.parent.glob(f".{target.name}.old-*"):
        shutil.rmtree(old, ignore_errors=True)


def publish_directory(target: str | Path, work: Callable[[Path], Any]) -> Any:
    """Run ``work(staging)`` in a fresh folder beside ``target``, then swap it in whole as ``target``.

    Nothing is written at ``target`` unless ``work`` returns: on an exception
    the staging folder is removed and ``target`` keeps what it had. On success
    the old ``target`` (if any) is replaced entirely, so no file of a previous
    run survives beside the new ones. Staging folders left by a killed run are
    removed first.

    Returns what ``work`` returned.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target)
    staging = Path(tempfile.mkdtemp(prefix=staging_prefix(target), dir=target.parent))
    try:
        result = work(staging)
        mode = 0o777 & ~_umask()
        os.chmod(staging, mode)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


__all__ = ["atomic_write", "atomic_write_text", "can_create_in", "publish_directory", "remove_stale_staging", "staging_prefix"]
