"""``mjx-metamimic bench env``: control steps/s of the jitted, vmapped stacking env
(physics only), per physics engine (``env.impl``), against MuJoCo's C library
(``mujoco.rollout``, all cores, no JAX) on the same scene, measured in the same run."""

import dataclasses
import os

import jax
import mujoco
import numpy as np
import tyro
from mujoco import rollout as mj_rollout
from rich.console import Console
from rich.table import Table

from mjx_metamimic import envs
from mjx_metamimic.bench.common import time_calls, write_json
from mjx_metamimic.envs.rollout import make_rollout_fn


@dataclasses.dataclass(frozen=True)
class EnvBenchArgs:
    """Benchmark the stacking env against MuJoCo C."""

    impls: tuple[str, ...] = ("jax", "c")
    """Physics engines of the env to measure (``env.impl``)."""
    batch_sizes: tuple[int, ...] = (16, 64, 256, 1024)
    """Numbers of envs stepped together."""
    steps_per_call: int = 10
    """Control steps per jitted call."""
    seconds: float = 5.0
    """Minimum timed seconds per measurement (after warm-up)."""
    baseline_trajectories: int = 64
    """Trajectories rolled out by MuJoCo C (over all cores)."""
    baseline_steps: int = 100
    """Control steps per MuJoCo C trajectory."""
    out: str = "bench_results/env.json"
    """Where to write the JSON results."""


def mujoco_c_steps_per_second(env, args: EnvBenchArgs, seed: int = 0) -> float:
    """Control steps/s of MuJoCo C (``mujoco.rollout``) on random layouts and actions."""
    model = env.mj_model
    rng = np.random.default_rng(seed)
    reset = jax.jit(jax.vmap(env.reset))
    states = reset(jax.random.split(jax.random.PRNGKey(seed), args.baseline_trajectories))
    sim = jax.device_get(jax.vmap(env.sim_state)(states))
    data = mujoco.MjData(model)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    initial = np.empty((args.baseline_trajectories, mujoco.mj_stateSize(model, spec)))
    for i in range(args.baseline_trajectories):
        data.qpos, data.qvel, data.act = sim.qpos[i], sim.qvel[i], sim.act[i]
        mujoco.mj_getState(model, data, initial[i], spec)
    # Same controls as the env would write: random arm velocities, random finger targets,
    # held for n_substeps physics steps each.
    actions = rng.uniform(-1, 1, (args.baseline_trajectories, args.baseline_steps, 7))
    ctrl = np.zeros((*actions.shape[:2], model.nu))
    ctrl[..., env.ids.arm_actuators] = actions[..., :6] * env.config.max_joint_velocity
    ctrl[..., env.ids.finger_actuators] = (actions[..., 6:] + 1) * 0.5 * env.config.gripper_open
    ctrl = np.repeat(ctrl, env.n_substeps, axis=1)
    nthread = os.cpu_count() or 1
    datas = [mujoco.MjData(model) for _ in range(nthread)]
    with mj_rollout.Rollout(nthread=nthread) as runner:
        runner.rollout(model, datas, initial, ctrl)  # warm-up
        seconds = time_calls(lambda: runner.rollout(model, datas, initial, ctrl), args.seconds)
    return args.baseline_trajectories * args.baseline_steps / seconds


def mjx_steps_per_second(
    env, batch: int, steps_per_call: int, seconds: float, seed: int = 0
) -> float:
    """Control steps/s of the jitted env at ``batch`` envs, random actions."""
    key = jax.random.PRNGKey(seed)
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(key, batch))
    rollout = make_rollout_fn(env, batch, steps_per_call, "random")
    carry = {"states": states, "key": key}

    def call():
        carry["states"], carry["key"], rewards, _ = rollout(carry["states"], carry["key"])
        return rewards

    call()  # compile
    return batch * steps_per_call / time_calls(call, seconds)


def main(argv: list[str]) -> int:
    """Runs the env benchmark, prints a table and writes JSON."""
    args = tyro.cli(EnvBenchArgs, args=argv, prog="mjx-metamimic bench env")
    console = Console()
    console.print(f"[bold]env bench[/] backend={jax.default_backend()}")
    baseline = mujoco_c_steps_per_second(envs.make("stack"), args)
    console.print(f"MuJoCo C rollout ({os.cpu_count()} threads): {baseline:,.0f} control steps/s")
    rows = []
    for impl in args.impls:
        for batch in args.batch_sizes:
            # The Warp engine's contact buffer is sized for the batch it steps.
            env = envs.make("stack", impl=impl, warp_max_envs=batch)
            sps = mjx_steps_per_second(env, batch, args.steps_per_call, args.seconds)
            ratio = sps / baseline
            rows.append(
                {"impl": impl, "batch": batch, "steps_per_s": sps, "ratio_vs_mujoco_c": ratio}
            )
            console.print(
                f"  impl {impl:>4} batch {batch:>4}: {sps:,.0f} control steps/s ({ratio:.3f}x C)"
            )
    table = Table(title="stacking env: control steps/s (10 physics substeps each)")
    for col in ("impl", "batch", "env steps/s", "MuJoCo C steps/s", "ratio"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["impl"],
            str(r["batch"]),
            f"{r['steps_per_s']:,.0f}",
            f"{baseline:,.0f}",
            f"{r['ratio_vs_mujoco_c']:.3f}x",
        )
    console.print(table)
    best = max(rows, key=lambda r: r["steps_per_s"])
    path = write_json(
        args.out,
        {
            "benchmark": "env",
            "args": dataclasses.asdict(args),
            "mujoco_c_steps_per_s": baseline,
            "env": rows,
            "best": best,
        },
    )
    console.print(
        f"best: impl {best['impl']} batch {best['batch']} at {best['ratio_vs_mujoco_c']:.3f}x "
        f"MuJoCo C; wrote {path}"
    )
    return 0
