"""Test configuration: the package's default XLA flags are set before JAX is imported."""

import mjx_metamimic  # noqa: F401  (must come before any jax import: sets XLA_FLAGS)
