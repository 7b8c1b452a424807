"""A cap on the C library's malloc arenas for the command line's long runs.

glibc gives a thread that finds the allocator busy an arena of its own (up to 8 per core)
and seldom hands the memory freed in them back to the system. With XLA's and MuJoCo's
thread pools allocating from many threads, a 60-minute ``features`` run's resident memory
grew by ~0.2 GiB an hour after warm-up in steps of 15-40 MiB; the same run with two arenas
stayed flat (docs/reliability.md). The cap is set before any thread starts; a user's own
``MALLOC_ARENA_MAX`` wins, and other C libraries (musl, macOS) are left alone.
"""

import ctypes
import os
import sys

M_ARENA_MAX = -8  # glibc's mallopt parameter number
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Caps glibc's malloc arenas at ``arenas`` unless ``MALLOC_ARENA_MAX`` is set; returns
    whether the cap was set (False off glibc)."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False
