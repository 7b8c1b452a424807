"""``mjx-metamimic rollout``: step the stacking env with a random or zero policy."""

import dataclasses
import time
from typing import Literal

import jax
import tyro

from mjx_metamimic import envs
from mjx_metamimic.envs.rollout import make_rollout_fn
from mjx_metamimic.envs.wrappers import AutoReset


@dataclasses.dataclass(frozen=True)
class RolloutArgs:
    """Roll out the stacking env and print its throughput."""

    num_envs: int = 16
    """Envs stepped in parallel (vmapped)."""
    steps: int = 200
    """Control steps per env (20 Hz: 200 steps = 10 s of simulated time)."""
    steps_per_call: int = 20
    """Control steps per jitted call (lax.scan)."""
    episode_length: int = 150
    """Steps before an episode is truncated and reset with a fresh layout."""
    policy: Literal["random", "zero"] = "random"
    """Random uniform actions in [-1, 1], or all zeros (the arm holds still)."""
    seed: int = 0
    impl: str = "auto"
    """Physics engine (``env.impl``): "c" (MuJoCo C), "jax" (MJX) or "auto" (c on a CPU)."""


def main(argv: list[str]) -> int:
    """Runs the rollout described by ``argv`` and prints steps/s."""
    args = tyro.cli(RolloutArgs, args=argv, prog="mjx-metamimic rollout")
    if args.num_envs < 1 or args.steps < 1 or args.steps_per_call < 1:
        raise ValueError("num_envs, steps and steps_per_call must be >= 1")
    env = AutoReset(envs.make("stack", impl=args.impl), args.episode_length)
    key = jax.random.PRNGKey(args.seed)
    key, reset_key = jax.random.split(key)
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(reset_key, args.num_envs))
    rollout = make_rollout_fn(env, args.num_envs, args.steps_per_call, args.policy)

    print(
        f"compiling ({args.num_envs} envs, {args.steps_per_call} steps per call, "
        f"{env.config.physics_impl} physics engine) ..."
    )
    start = time.perf_counter()
    jax.block_until_ready(rollout(states, key))
    print(f"compiled in {time.perf_counter() - start:.1f} s")

    calls = max(1, args.steps // args.steps_per_call)
    total_reward, stacked = 0.0, 0.0
    start = time.perf_counter()
    for i in range(calls):
        states, key, rewards, metrics = rollout(states, key)
        total_reward += float(rewards.sum())
        stacked = max(stacked, float(metrics["env/stacked"].max()))
        if (i + 1) % max(1, calls // 5) == 0 or i + 1 == calls:
            elapsed = time.perf_counter() - start
            done = (i + 1) * args.steps_per_call * args.num_envs
            print(f"  {done:>8d} env steps  {done / elapsed:9.0f} steps/s")
    elapsed = time.perf_counter() - start
    env_steps = calls * args.steps_per_call * args.num_envs
    print(
        f"{args.policy} policy: {env_steps} env steps in {elapsed:.2f} s = "
        f"{env_steps / elapsed:.0f} control steps/s ({env_steps * env.n_substeps / elapsed:.0f} "
        f"physics steps/s); total task reward {total_reward:.0f}"
    )
    return 0
