"""Looking at the stacking env: a rendered random-walk rollout, and depth and segmentation
as images beside the colour image."""

import jax
import jax.numpy as jnp
import numpy as np

from mjx_metamimic.render.renderer import Frame, Renderer


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


def rollout_frames(env, renderer: Renderer, steps: int, seed: int) -> tuple[Frame, jax.Array]:
    """The first frame of a fresh episode (all layers) and ``steps`` more rgb frames (T, H, W, 3)
    of a smoothed random walk of the arm."""

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
        keys = jax.random.split(action_key, steps)
        _, rgbs = jax.lax.scan(step, (state, jnp.zeros(env.action_size)), keys)
        return first, rgbs

    return run(jax.random.PRNGKey(seed))
