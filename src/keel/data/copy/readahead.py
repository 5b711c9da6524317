"""Reading a local source file ahead while the command is still starting.

``keel data copy`` spends its first few tenths of a second importing the engine and
opening the workspace before the plan is saved and the first byte moves. For a
large local file that time need not be idle: the kernel is asked
(``POSIX_FADV_WILLNEED``) to start reading the file's first ``READ_AHEAD`` bytes
into the page cache, from a thread, so a cold disk is already busy when the copy
begins. Nothing is written and nothing is read into Python; the copy checks the
file as always. Only standard-library modules are imported here.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading

READ_AHEAD = 512 << 20  # about what a disk reads while the command starts; bounded, so cheap
WORTH_IT = 64 << 20  # smaller files are read in less time than the start-up takes anyway


def read_ahead(path: str) -> None:
    """Start reading ``path`` (an absolute local path) ahead, if it is a large regular file."""
    if hasattr(os, "posix_fadvise"):
        threading.Thread(target=_advise, args=(path,), name="keel-read-ahead", daemon=True).start()


def _advise(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode) and info.st_size >= WORTH_IT:
                os.posix_fadvise(fd, 0, min(info.st_size, READ_AHEAD), os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)
