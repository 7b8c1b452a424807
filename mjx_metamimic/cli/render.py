"""``mjx-metamimic render``: look at what the agent sees.

Renders the stacking env with the JAX renderer: one frame of a fresh episode as a PNG
(``--out``), and optionally a short rollout with smoothed random actions as a GIF or MP4
(``--video``). ``--panels`` adds depth and segmentation next to the colour image.
"""

import dataclasses
from pathlib import Path

import imageio.v3 as iio
import jax
import numpy as np
import tyro

from mjx_metamimic import envs
from mjx_metamimic.render.preview import colourize, rollout_frames
from mjx_metamimic.render.renderer import Renderer
from mjx_metamimic.render.video_file import check_video_path, write_video


@dataclasses.dataclass(frozen=True)
class RenderArgs:
    """Render the stacking env with the JAX renderer."""

    out: str | None = "frame.png"
    """PNG of the first frame of a fresh episode (None: no PNG)."""
    video: str | None = None
    """GIF or MP4 of a short rollout with smoothed random actions (MP4 needs PyAV)."""
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


def _upscale(images: np.ndarray, factor: int) -> np.ndarray:
    return images.repeat(factor, axis=-3).repeat(factor, axis=-2)


def main(argv: list[str]) -> int:
    """Renders the frame and/or video described by ``argv``."""
    args = tyro.cli(RenderArgs, args=argv, prog="mjx-metamimic render")
    if args.out is None and args.video is None:
        raise SystemExit("nothing to do: give --out and/or --video")
    if min(*args.size, args.upscale, args.fps) < 1 or args.steps < 0:
        raise SystemExit("size, upscale and fps must be >= 1 and steps >= 0")
    if args.video is not None:  # an unwritable format fails before rendering
        check_video_path(Path(args.video))
    env = envs.make("stack")
    renderer = Renderer(
        env.mj_model,
        *args.size,
        camera=args.camera,
        supersample=args.supersample,
        shadows=args.shadows,
    )
    steps = args.steps if args.video else 0
    first, rgbs = rollout_frames(env, renderer, steps, args.seed)
    first = jax.tree.map(np.asarray, first)
    if args.out is not None:
        image = colourize(first, renderer.scene.zfar) if args.panels else first.rgb
        iio.imwrite(args.out, _upscale(image, args.upscale))
        print(f"wrote {args.out} ({args.camera}, {args.size[0]}x{args.size[1]})")
    if args.video is not None:
        frames = np.concatenate([first.rgb[None], np.asarray(rgbs)])
        write_video(Path(args.video), _upscale(frames, args.upscale), args.fps)
        print(f"wrote {args.video} ({len(frames)} frames at {args.fps} fps)")
    return 0
