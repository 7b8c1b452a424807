"""mjx_metamimic: MetaMimic one-shot imitation, end to end in JAX on MuJoCo MJX."""

import contextlib
import io

from mjx_metamimic._xla import apply_default_xla_flags

apply_default_xla_flags()

# mujoco.mjx prints "Failed to import warp" when its optional GPU backend (MuJoCo Warp)
# is absent; we never use it, so import mjx once here with that print silenced.
with contextlib.redirect_stdout(io.StringIO()):
    from mujoco import mjx  # noqa: F401

__version__ = "0.1.0"
