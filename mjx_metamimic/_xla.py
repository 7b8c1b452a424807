"""Default XLA flags, applied before JAX is imported.

MJX on XLA:CPU is 8-16x faster without the fusion emitters (measured, see
docs/benchmarks.md). Flags the user already set in ``XLA_FLAGS`` always win: a
default is only added when the user's string does not mention that flag at all.
jaxlib 0.11 removed ``--xla_cpu_use_fusion_emitters`` and aborts on unknown flags, so a
flag is only added for the jaxlib versions that know it.
"""

import os
import sys
from importlib import metadata

# flag -> the jaxlib versions (major, minor) that accept it, as [first, last].
DEFAULT_FLAGS: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "--xla_cpu_use_fusion_emitters=false": ((0, 4), (0, 10)),
}


def _jaxlib_version() -> tuple[int, int] | None:
    """The installed jaxlib's (major, minor), read without importing jax."""
    try:
        major, minor = metadata.version("jaxlib").split(".")[:2]
        return int(major), int(minor)
    except (metadata.PackageNotFoundError, ValueError):
        return None


def with_default_flags(current: str, version: tuple[int, int] | None, flags=DEFAULT_FLAGS) -> str:
    """``current`` XLA_FLAGS plus each default that ``version`` accepts and the user did not set."""
    for flag, (first, last) in flags.items():
        name = flag.split("=", 1)[0]
        if version is not None and first <= version <= last and name not in current:
            current = f"{current} {flag}".strip()
    return current


def apply_default_xla_flags() -> None:
    """Adds the default flags to ``XLA_FLAGS`` (no effect once JAX has been imported)."""
    if "jax" in sys.modules:  # Too late to influence the backend; leave it alone.
        return
    os.environ["XLA_FLAGS"] = with_default_flags(os.environ.get("XLA_FLAGS", ""), _jaxlib_version())
