"""Device-resident replay (over flashbax): per-env trajectory rows, each frame stored once,
and n-step sampling that never mixes episodes."""

from mjx_metamimic.replay.buffer import (
    NStepReplay,
    ReplayConfig,
    ReplayState,
    Windows,
    memory_estimate,
)
from mjx_metamimic.replay.nstep import NStepBatch, Transition, nstep_batch

__all__ = [
    "NStepBatch",
    "NStepReplay",
    "ReplayConfig",
    "ReplayState",
    "Transition",
    "Windows",
    "memory_estimate",
    "nstep_batch",
]
