"""Default XLA flags, applied before JAX is imported.

MJX on XLA:CPU is 5-30x faster without the fusion emitters (measured, see
docs/benchmarks.md). Flags the user already set in ``XLA_FLAGS`` always win: a
default is only added when the user's string does not mention that flag at all.
"""

import os
import sys

DEFAULT_CPU_FLAGS = ("--xla_cpu_use_fusion_emitters=false",)


def apply_default_xla_flags(flags=DEFAULT_CPU_FLAGS) -> None:
    """Adds each default flag to ``XLA_FLAGS`` unless the user set that flag."""
    if "jax" in sys.modules:  # Too late to influence the backend; leave it alone.
        return
    current = os.environ.get("XLA_FLAGS", "")
    for flag in flags:
        name = flag.split("=", 1)[0]
        if name not in current:
            current = f"{current} {flag}".strip()
    os.environ["XLA_FLAGS"] = current
