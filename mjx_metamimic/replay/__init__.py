"""Device-resident replay (over flashbax): per-env trajectory rows, each frame stored once,
n-step sampling that never mixes episodes, and mixed sampling from several sources."""

from mjx_metamimic.replay.buffer import (
    STEP_KEYS,
    NStepReplay,
    ReplayConfig,
    ReplayState,
    memory_estimate,
)
from mjx_metamimic.replay.mixed import sample_mixed, split_batch_size
from mjx_metamimic.replay.nstep import NStepBatch, nstep_batch

__all__ = [
    "STEP_KEYS",
    "NStepBatch",
    "NStepReplay",
    "ReplayConfig",
    "ReplayState",
    "memory_estimate",
    "nstep_batch",
    "sample_mixed",
    "split_batch_size",
]
