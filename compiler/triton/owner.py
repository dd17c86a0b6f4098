"""Whether a file or folder on disk may be trusted: no one but its owner can write it, and
its owner is this user or root. A place another user can write could hold a planted file
(a tuned config, a kernel binary), so incdsl reads nothing from one."""

from __future__ import annotations

import os
import stat


def trusted(info: os.stat_result) -> bool:
    """Whether what ``info`` describes is owned by this user or root and not writable by group or others."""
    return info.st_uid in (os.getuid(), 0) and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
