"""``mjx-metamimic render``: look at what the agent sees.

Renders the stacking env with the JAX renderer: one frame of a fresh episode as a PNG
(``--out``), and optionally a short rollout with smoothed random actions as a GIF or MP4
(``--video``). ``--panels`` adds depth and segmentation next to the colour image.
"""

import dataclasses
from pathlib import Path

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import tyro

from mjx_metamimic import envs
from mjx_metamimic.render.renderer import Frame, Renderer


@dataclasses.dataclass(frozen=True)
class RenderArgs:
    """Render the stacking env with the JAX renderer."""

    out: str | None = "frame.png"
    """PNG of the first frame of a fresh episode (None: no PNG)."""
    video: str | None = None
    """GIF or MP4 of a short rollout with smoothed random actions (MP4 needs ffmpeg)."""
    camera: str = "front"
    """Camera name: front, side or wrist."""
    size: tuple[int, int] = (64, 64)
    """Image height and width in pixels (the agent's default view is 64 x 64)."""
    steps: int = 60
    """Control steps of the video rollout (20 Hz)."""
    fps: int = 20
    """Frames per second of the video."""
    upscale: int = 4
    """Nearest-neighbour upscaling of the saved images (1 keeps the rendered size)."""
    panels: bool = False
    """Show depth and segmentation next to the colour image."""
    supersample: int = 1
    """Samples per pixel along each axis (anti-aliasing)."""
    shadows: bool = False
    """Cast hard shadows from lights with castshadow (none in the stock scene)."""
    seed: int = 0
    """Seed of the episode layout, block colours and actions."""


def colourize(frame: Frame, zfar: float) -> np.ndarray:
    """(H, 3W, 3) uint8: rgb | depth (near bright, far dark) | segmentation palette."""
    depth = np.asarray(frame.depth)
    hit = depth < zfar
    near, far = (depth[hit].min(), depth[hit].max()) if hit.any() else (0.0, 1.0)
    grey = np.where(hit, 1.0 - (depth - near) / max(far - near, 1e-6), 0.0)
    grey = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=-1)
    seg = np.asarray(frame.segmentation)
    palette = np.random.default_rng(0).integers(40, 256, (int(seg.max()) + 2, 3)).astype(np.uint8)
    palette[0] = 0  # background
    return np.concatenate([np.asarray(frame.rgb), grey, palette[seg + 1]], axis=1)


def rollout_frames(env, renderer: Renderer, args: RenderArgs) -> tuple[Frame, jax.Array]:
    """The first frame of an episode (all layers) and ``steps`` more rgb frames."""

    def colours(state):  # the episode's block colours
        return env.mjx_model.geom_rgba.at[env.ids.block_geoms].set(state.info["block_rgba"])

    def step(carry, key):
        state, action = carry
        noise = jax.random.uniform(key, action.shape, minval=-1.0, maxval=1.0)
        action = jnp.clip(0.85 * action + 0.5 * noise, -1.0, 1.0)  # smoothed random walk
        state = env.step(state, action)
        rgb = renderer.render_rgb(env.mjx_model, state.pipeline_state, colours(state))
        return (state, action), rgb

    @jax.jit
    def run(key):
        reset_key, action_key = jax.random.split(key)
        state = env.reset(reset_key)
        first = renderer.render(env.mjx_model, state.pipeline_state, colours(state))
        keys = jax.random.split(action_key, args.steps)
        _, rgbs = jax.lax.scan(step, (state, jnp.zeros(env.action_size)), keys)
        return first, rgbs

    return run(jax.random.PRNGKey(args.seed))


def _upscale(images: np.ndarray, factor: int) -> np.ndarray:
    return images.repeat(factor, axis=-3).repeat(factor, axis=-2)


def main(argv: list[str]) -> int:
    """Renders the frame and/or video described by ``argv``."""
    args = tyro.cli(RenderArgs, args=argv, prog="mjx-metamimic render")
    if args.out is None and args.video is None:
        raise SystemExit("nothing to do: give --out and/or --video")
    if min(*args.size, args.upscale, args.fps) < 1 or args.steps < 0:
        raise SystemExit("size, upscale and fps must be >= 1 and steps >= 0")
    env = envs.make("stack")
    renderer = Renderer(
        env.mj_model,
        *args.size,
        camera=args.camera,
        supersample=args.supersample,
        shadows=args.shadows,
    )
    steps = args.steps if args.video else 0
    first, rgbs = rollout_frames(env, renderer, dataclasses.replace(args, steps=steps))
    first = jax.tree.map(np.asarray, first)
    if args.out is not None:
        image = colourize(first, renderer.scene.zfar) if args.panels else first.rgb
        iio.imwrite(args.out, _upscale(image, args.upscale))
        print(f"wrote {args.out} ({args.camera}, {args.size[0]}x{args.size[1]})")
    if args.video is not None:
        frames = np.concatenate([first.rgb[None], np.asarray(rgbs)])
        _write_video(Path(args.video), _upscale(frames, args.upscale), args.fps)
        print(f"wrote {args.video} ({len(frames)} frames at {args.fps} fps)")
    return 0


def _write_video(path: Path, frames: np.ndarray, fps: int) -> None:
    if path.suffix.lower() == ".gif":
        iio.imwrite(path, frames, duration=1000 / fps, loop=0)
        return
    try:
        iio.imwrite(path, frames, fps=fps)
    except Exception as err:  # noqa: BLE001  (imageio raises various errors per plugin)
        raise SystemExit(
            f"could not write {path} ({err}); MP4 needs ffmpeg or PyAV — or use a .gif"
        ) from err
