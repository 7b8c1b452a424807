"""Environments: ``make("stack", **overrides)`` builds the block-stacking env."""

import dataclasses

from mjx_metamimic.envs.stack import SimState, StackEnv, StackEnvConfig

_REGISTRY = {"stack": (StackEnv, StackEnvConfig)}


def make(name: str = "stack", **overrides) -> StackEnv:
    """Builds the env ``name`` with config fields replaced by ``overrides``.

    Raises:
      ValueError: unknown env name, unknown option, or an invalid option value.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown env {name!r}; available: {sorted(_REGISTRY)}")
    env_cls, config_cls = _REGISTRY[name]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for env {name!r}; valid options: {sorted(fields)}"
        )
    return env_cls(config_cls(**overrides))


__all__ = ["SimState", "StackEnv", "StackEnvConfig", "make"]
