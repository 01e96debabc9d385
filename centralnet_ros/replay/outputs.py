"""
The output folder of a replay: checked before anything runs, written as one set.

:func:`check_output_folder` refuses, before the replay starts, an ``--out`` that is a
file, that cannot be written, or that holds files which are not a replay's results.
:func:`result_set` gives a temporary sibling folder to write into; only when every file
is written does it add :data:`MARKER` (what was written, and whether the run was
complete) and rename the folder into place, replacing the previous results whole. A
failure (a full disk, say) removes the temporary folder and leaves the earlier results
as they were: runs never mix.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
import shutil
import tempfile
import time
from typing import Iterator

from ..config import replace_folder

__all__ = ['MARKER', 'OutputError', 'ResultSet', 'check_output_folder', 'result_set']

MARKER = 'outputs.json'
"""Written last into a result folder: the files of the set, the command and whether the run was complete."""


_BEFORE_MARKER = ('metrics.json', 'summary.txt', 'predictions.jsonl')
"""What a replay wrote before :data:`MARKER` existed: such a folder is also taken as earlier results."""


class OutputError(ValueError):
    """An output folder that cannot take the results."""


def check_output_folder(out: str | os.PathLike) -> Path:
    """
    Check that the results can go to ``out``; create its parent folders. Returns ``out`` as a Path.

    Raises :class:`OutputError` when ``out`` is a file, holds files that are not the
    results of an earlier run, or its parent cannot be written (checked by creating and
    removing a temporary folder there, which also works for root on read-only mounts).
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputError(f'--out {out} is a file; expected a folder for the results')
    earlier = (out / MARKER).is_file() or all((out / f).is_file() for f in _BEFORE_MARKER)
    if out.is_dir() and any(out.iterdir()) and not earlier:
        raise OutputError(f'--out {out} holds files that are not results of a replay (no {MARKER}); '
                          'choose a new or empty folder')
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=f'.{out.name}.probe-', dir=out.parent)
        os.rmdir(probe)
    except OSError as exc:
        raise OutputError(f'--out {out}: cannot write into {out.parent} ({exc.strerror or exc})') from None
    return out


class ResultSet:
    """The folder being written (``path``); set ``incomplete`` to the reason when the run ended early."""

    def __init__(self, path: Path):
        self.path = path
        self.incomplete: str | None = None


@contextlib.contextmanager
def result_set(out: str | os.PathLike, *, command: str = '') -> Iterator[ResultSet]:
    """Yield a :class:`ResultSet` in a temporary folder; then publish it as ``out`` in one rename."""
    out = check_output_folder(out)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out.name}.new-', dir=out.parent))
    try:
        results = ResultSet(tmp)
        yield results
        marker = {'command': command, 'complete': results.incomplete is None,
                  'incomplete_reason': results.incomplete,
                  'files': sorted(p.name for p in tmp.iterdir()),
                  'written': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + '\n', encoding='utf-8')
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
