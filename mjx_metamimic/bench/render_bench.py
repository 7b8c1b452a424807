"""``mjx-metamimic bench render``: images/s of the JAX ray-cast renderer (jitted, vmapped,
rgb path with per-env block colours) against MuJoCo's OpenGL renderer on the same states,
measured in the same run; plus images/s as the number of geoms grows."""

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import tyro
from mujoco import mjx
from rich.console import Console
from rich.table import Table

from mjx_metamimic import envs
from mjx_metamimic.bench.common import time_calls, write_json
from mjx_metamimic.envs.scene import scene_path
from mjx_metamimic.render import Renderer
from mjx_metamimic.render.reference import ReferenceUnavailable, render_reference


@dataclasses.dataclass(frozen=True)
class RenderBenchArgs:
    """Benchmark the JAX renderer against MuJoCo's OpenGL renderer."""

    sizes: tuple[int, ...] = (64, 128)
    """Square image sizes (pixels)."""
    batch_sizes: tuple[int, ...] = (1, 16, 64, 256)
    """Images rendered together (vmapped) per jitted call."""
    camera: str = "front"
    """Camera to render."""
    extra_cubes: tuple[int, ...] = (0, 16, 64, 256)
    """Geom-scaling sweep: static cubes added to the scene (64x64, batch ``scaling_batch``)."""
    scaling_batch: int = 64
    """Batch size of the geom-scaling sweep."""
    states: int = 256
    """Distinct env states (reset layouts) cycled through by both renderers."""
    seconds: float = 3.0
    """Minimum timed seconds per measurement (after warm-up)."""
    quick: bool = False
    """Smoke-test settings: 64x64 only, batches 1 and 16, 0 and 64 extra cubes, 1 s each."""
    out: str = "bench_results/render.json"
    """Where to write the JSON results."""


def quick_args(args: RenderBenchArgs) -> RenderBenchArgs:
    """The ``--quick`` variant of ``args``."""
    return dataclasses.replace(
        args, sizes=(64,), batch_sizes=(1, 16), extra_cubes=(0, 64), states=16, seconds=1.0
    )


def add_cubes(n: int, seed: int = 0, scene: str = "stack") -> mujoco.MjModel:
    """The stacking scene with ``n`` static 4 cm cubes of random colours and yaws scattered
    over the table in view of the front camera (no joints: qpos is unchanged)."""
    spec = mujoco.MjSpec.from_file(str(scene_path(scene)))
    rng = np.random.default_rng(seed)
    for i in range(n):
        spec.worldbody.add_geom(
            name=f"extra_cube_{i}",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[0.02, 0.02, 0.02],
            pos=[rng.uniform(0.05, 0.65), rng.uniform(-0.3, 0.3), 0.02],
            euler=[0.0, 0.0, rng.uniform(-np.pi, np.pi)],
            rgba=[*rng.uniform(0.1, 0.9, 3), 1.0],
        )
    return spec.compile()


def env_states(env, count: int, seed: int = 0):
    """``count`` reset states of the env: (batched mjx.Data, (count, ngeom, 4) colours)."""
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(seed), count))
    rgba = jnp.broadcast_to(env.mjx_model.geom_rgba, (count, *env.mjx_model.geom_rgba.shape))
    rgba = rgba.at[:, env.ids.block_geoms].set(states.info["block_rgba"])
    return states.pipeline_state, rgba


def host_datas(model: mujoco.MjModel, qpos: np.ndarray) -> list[mujoco.MjData]:
    """One MjData per row of ``qpos`` with kinematics and cameras/lights computed."""
    datas = []
    for q in qpos:
        data = mujoco.MjData(model)
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        mujoco.mj_camlight(model, data)
        datas.append(data)
    return datas


def mujoco_images_per_second(model, qpos, rgba, size, camera, seconds) -> float | None:
    """Frames/s of ``mujoco.Renderer`` (update_scene + render) on the same states, or None
    when no OpenGL backend is available."""
    try:
        ref = render_reference(
            model, qpos, size, size, camera, rgba, frames=False, time_seconds=seconds
        )
    except ReferenceUnavailable as err:
        Console(stderr=True).print(f"[yellow]no MuJoCo baseline[/]: {err}")
        return None
    return ref.images_per_second


def jax_images_per_second(renderer, mjx_model, data, rgba, batch, seconds) -> float:
    """Images/s of ``renderer.render_rgb`` jitted and vmapped over ``batch`` states."""
    take = lambda x: x[:batch] if x.shape[0] >= batch else jnp.resize(x, (batch, *x.shape[1:]))
    data_b = jax.tree.map(take, data)
    rgba_b = None if rgba is None else take(rgba)
    fn = jax.jit(jax.vmap(renderer.render_rgb, in_axes=(None, 0, None if rgba is None else 0)))
    jax.block_until_ready(fn(mjx_model, data_b, rgba_b))  # compile + warm up
    return batch / time_calls(lambda: fn(mjx_model, data_b, rgba_b), seconds)


def geom_scaling_row(extra_cubes: int, qpos: np.ndarray, args: RenderBenchArgs) -> dict:
    """Images/s at 64x64 of the scene with ``extra_cubes`` more cubes: JAX with per-tile
    candidate lists (8x8 tiles, lists sized by ``Renderer.tile_load`` over these states so
    that no tile drops a candidate), JAX testing every geom everywhere, and MuJoCo."""
    model = add_cubes(extra_cubes)
    mjx_model = mjx.put_model(model)
    data = jax.tree.map(
        lambda *x: jnp.stack(x), *(mjx.put_data(model, d) for d in host_datas(model, qpos))
    )
    everything = Renderer(model, 64, 64, args.camera, max_geoms_per_tile=model.ngeom)
    probe = Renderer(model, 64, 64, args.camera, tile_size=8, max_geoms_per_tile=1)
    load = jax.vmap(probe.tile_load, in_axes=(None, 0))(mjx_model, data)
    slots = max([int(v.max()) for v in load.values()], default=model.ngeom)
    culled = Renderer(model, 64, 64, args.camera, tile_size=8, max_geoms_per_tile=slots)
    ips = {
        name: jax_images_per_second(renderer, mjx_model, data, None, len(qpos), args.seconds)
        for name, renderer in (("culled", culled), ("all", everything))
    }
    return {
        "extra_cubes": extra_cubes,
        "ngeom": model.ngeom,
        "slots_per_tile": slots,
        "jax_culled_images_per_s": ips["culled"],
        "jax_all_geoms_images_per_s": ips["all"],
        "mujoco_images_per_s": mujoco_images_per_second(
            model, qpos, None, 64, args.camera, args.seconds
        ),
    }


def main(argv: list[str]) -> int:
    """Runs the render benchmark, prints tables and writes JSON."""
    args = tyro.cli(RenderBenchArgs, args=argv, prog="mjx-metamimic bench render")
    if args.quick:
        args = quick_args(args)
    console = Console()
    console.print(f"[bold]render bench[/] backend={jax.default_backend()} camera={args.camera}")
    env = envs.make("stack")
    data, rgba = env_states(env, args.states)
    qpos = np.asarray(data.qpos)
    rgba_host = np.asarray(rgba)

    rows = []
    for size in args.sizes:
        renderer = Renderer(env.mj_model, size, size, args.camera)
        base = mujoco_images_per_second(
            env.mj_model, qpos, rgba_host, size, args.camera, args.seconds
        )
        for batch in args.batch_sizes:
            ips = jax_images_per_second(renderer, env.mjx_model, data, rgba, batch, args.seconds)
            ratio = None if base is None else ips / base
            rows.append(
                {
                    "size": size,
                    "batch": batch,
                    "jax_images_per_s": ips,
                    "mujoco_images_per_s": base,
                    "ratio": ratio,
                }
            )
            console.print(
                f"  {size}x{size} batch {batch:>4}: {ips:,.0f} images/s"
                + ("" if base is None else f" (MuJoCo {base:,.0f}, {ratio:.2f}x)")
            )

    scaling = [geom_scaling_row(n, qpos[: args.scaling_batch], args) for n in args.extra_cubes]
    for r in scaling:
        console.print(
            f"  ngeom {r['ngeom']:>4}: culled {r['jax_culled_images_per_s']:,.0f}, no culling "
            f"{r['jax_all_geoms_images_per_s']:,.0f}, MuJoCo "
            f"{_fmt(r['mujoco_images_per_s'])} images/s"
        )

    _print_tables(console, rows, scaling, args)
    best = {  # per size: the batch with the most images/s
        str(size): max((r for r in rows if r["size"] == size), key=lambda r: r["jax_images_per_s"])
        for size in args.sizes
    }
    path = write_json(
        args.out,
        {
            "benchmark": "render",
            "args": dataclasses.asdict(args),
            "rows": rows,
            "geom_scaling": scaling,
            "best": best,
        },
    )
    for size, r in best.items():
        ratio = "" if r["ratio"] is None else f" = {r['ratio']:.2f}x MuJoCo"
        console.print(
            f"best {size}x{size}: batch {r['batch']}, {r['jax_images_per_s']:,.0f} images/s{ratio}"
        )
    console.print(f"wrote {path}")
    return 0


def _fmt(x, spec=",.0f", none="n/a"):
    return none if x is None else format(x, spec)


def _print_tables(console, rows, scaling, args) -> None:
    table = Table(
        title=f"JAX renderer (rgb, per-env colours) vs MuJoCo OpenGL, camera {args.camera}"
    )
    for col in ("size", "batch", "JAX images/s", "MuJoCo images/s", "ratio"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            f"{r['size']}x{r['size']}",
            str(r["batch"]),
            _fmt(r["jax_images_per_s"]),
            _fmt(r["mujoco_images_per_s"]),
            _fmt(r["ratio"], ".2f") + ("" if r["ratio"] is None else "x"),
        )
    console.print(table)
    table = Table(title=f"images/s vs number of geoms (64x64, batch {args.scaling_batch})")
    for col in ("extra cubes", "ngeom", "slots/tile", "JAX culled", "JAX no culling", "MuJoCo"):
        table.add_column(col, justify="right")
    for s in scaling:
        table.add_row(
            str(s["extra_cubes"]),
            str(s["ngeom"]),
            str(s["slots_per_tile"]),
            _fmt(s["jax_culled_images_per_s"]),
            _fmt(s["jax_all_geoms_images_per_s"]),
            _fmt(s["mujoco_images_per_s"]),
        )
    console.print(table)
