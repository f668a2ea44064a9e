"""Output paths of the command line, checked before any work: one place for every subcommand.

An output file must have a known suffix, not be a folder, not exist unless
``--overwrite``, not be one of the command's inputs, and sit in a folder
where a file can really be created (tried, so that read-only or special file
systems are caught before a ledger is charged). An output folder is replaced
whole when the work has succeeded, so it must not be a file, nor a folder
holding something other than what the command writes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from privagg.atomic import can_create_in
from privagg.errors import PrivaggInputError


def check_writable_folder(path: Path, option: str) -> None:
    """The folder of ``path`` (or its first existing ancestor, which it would be created from) must be writable."""
    parent = path.parent if str(path.parent) else Path(".")
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise PrivaggInputError(f"{option} {str(path)!r}: {str(existing)!r} is a file, not a folder. Fix: choose another path.")
    if not os.access(existing, os.W_OK | os.X_OK) or not can_create_in(existing):
        raise PrivaggInputError(f"{option} {str(path)!r}: folder {str(existing)!r} is not writable. Fix: choose another path.")
    if path.exists() and not os.access(path, os.W_OK):
        raise PrivaggInputError(f"{option} {str(path)!r} is not writable. Fix: change its permissions or choose another path.")


def check_not_inputs(outputs: Iterable[Path], inputs: Iterable[Path], option: str = "--out") -> None:
    """No output may be one of the inputs (the same file, by path or by identity)."""
    inputs = list(inputs)
    resolved = {p.resolve(): p for p in inputs}
    for out in outputs:
        same = resolved.get(out.resolve())
        if same is None and out.exists():
            same = next((p for p in inputs if p.exists() and os.path.samefile(p, out)), None)
        if same is not None:
            raise PrivaggInputError(
                f"{option} {str(out)!r} is an input of this command ({str(same)!r}); writing it would destroy it. "
                "Fix: choose an output path outside the inputs."
            )


def check_out_file(out: str, *, suffixes: tuple[str, ...], overwrite: bool, inputs: Iterable[Path] = (),
                   companions: tuple[str, ...] = (), option: str = "--out") -> Path:
    """Check an output file (and ``companions``: suffixes of files written beside it, e.g. ``.privacy.json``)."""
    path = Path(out)
    if path.suffix.lower() not in suffixes:
        raise PrivaggInputError(
            f"{option} {out!r}: unknown file type. Fix: end the file name in {' or '.join(suffixes)}."
        )
    files = [path, *(path.with_name(path.name + c) for c in companions)]
    check_not_inputs(files, inputs, option)
    for p in files:
        if p.is_dir():
            raise PrivaggInputError(f"{option} {out!r}: {str(p)!r} is a directory. Fix: name a file, e.g. {out.rstrip('/')}/out{suffixes[0]}.")
        if p.exists() and not overwrite:
            raise PrivaggInputError(
                f"{option} {out!r}: {str(p)!r} exists already. Fix: add --overwrite to replace it, or choose another path."
            )
    check_writable_folder(path, option)
    return path


def check_out_dir(out: str, *, overwrite: bool, marker: str, what: str, inputs: Iterable[Path] = (),
                  option: str = "--out") -> Path:
    """Check an output folder that will be replaced whole: not a file, not an input, not a non-empty folder
    without ``marker`` (the file that shows it holds ``what``) unless ``overwrite``, and writable."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise PrivaggInputError(f"{option} {out!r} is a file, not a folder. Fix: name a new folder, or remove the file.")
    inputs = list(inputs)
    for p in inputs:
        if p.resolve() == path.resolve() or p.resolve().is_relative_to(path.resolve()):
            raise PrivaggInputError(
                f"{option} {out!r} holds an input of this command ({str(p)!r}), and it would be replaced whole. "
                "Fix: choose another folder."
            )
    if path.is_dir() and any(path.iterdir()) and not (path / marker).exists() and not overwrite:
        raise PrivaggInputError(
            f"{option} {out!r} is a folder that does not hold {what}, and it would be replaced whole. "
            "Fix: name a new folder, or add --overwrite to replace it."
        )
    check_writable_folder(path, option)
    return path
