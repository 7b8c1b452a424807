"""Learners: D4PG (categorical critic, deterministic policy), several learners sharing a
replay (MetaMimic's imitation + task learners), scanned updates, and probe environments."""

from mjx_metamimic.agents.d4pg import (
    D4PG,
    D4PGConfig,
    D4PGState,
    categorical_critic_loss,
    follow_targets,
    nonfinite_counts,
)
from mjx_metamimic.agents.multi import LearnerBatch, MultiD4PG
from mjx_metamimic.agents.scan import scan_sampled_updates, scan_updates

__all__ = [
    "D4PG",
    "D4PGConfig",
    "D4PGState",
    "LearnerBatch",
    "MultiD4PG",
    "categorical_critic_loss",
    "follow_targets",
    "nonfinite_counts",
    "scan_sampled_updates",
    "scan_updates",
]
