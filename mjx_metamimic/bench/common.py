"""Shared helpers of the benchmarks: timing, machine description, JSON output."""

import datetime
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp

from mjx_metamimic.demos import DemoBank


def machine() -> dict:
    """Describes where a benchmark ran (recorded in every JSON result)."""
    return {
        "date": datetime.date.today().isoformat(),
        "backend": jax.default_backend(),
        "devices": [d.device_kind for d in jax.devices()],
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def time_calls(fn: Callable[[], object], min_seconds: float, min_calls: int = 2) -> float:
    """Seconds per call of ``fn`` (already warmed up), averaged over >= ``min_seconds``."""
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        jax.block_until_ready(fn())
        calls += 1
    return (time.perf_counter() - start) / calls


def write_json(path: str | Path, payload: dict) -> Path:
    """Writes ``payload`` plus the machine description to ``path`` (atomically); values
    JSON lacks (paths) are written as strings."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"machine": machine(), **payload}, indent=2, default=str))
    tmp.replace(path)
    return path


def reset_bank(env, num_demos: int, steps: int, seed: int = 0) -> DemoBank:
    """Demos that stand still at random reset states: the shapes of real ones, for
    measuring speed (no demonstrator to compile and run)."""
    states = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(seed), num_demos))
    tile = lambda x: jnp.repeat(x[:, None], steps, axis=1)
    frames = states.obs.get("pixels", jnp.zeros((num_demos, 1, 1, 3), jnp.uint8))
    return DemoBank(
        frames=tile(frames),
        proprio=tile(states.obs["proprio"]),
        features=tile(states.obs["features"]),
        task_reward=jnp.zeros((num_demos, steps)),
        lengths=jnp.full((num_demos,), steps, jnp.int32),
        init_state=jax.vmap(env.sim_state)(states),
    )
