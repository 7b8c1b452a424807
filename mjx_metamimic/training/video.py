"""Side-by-side videos of one-shot imitation: the agent (left) beside the demo it follows (right).

The imitation policy acts deterministically (no exploration noise) from the demo's first
simulator state, and the JAX renderer draws every state it reaches at ``size`` x ``size``:
this is separate from what the policy observes, so features configs get videos too. A
dataset keeps its demos' frames but no per-step simulator states (and MetaMimic has no
demo actions to replay), so the demo half shows the recorded frames - exactly the goals
the agent was given - resized to the same size (nearest neighbour).

Layout of a frame: one row per demo, each ``[agent | demo]`` above a thin bar: under the
agent, the step's imitation reward as a fraction of its maximum (green, red once the arm
has drifted past the termination threshold); under the demo, its progress. A demo shorter
than the video holds its last frame.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mjx_metamimic.demos import DemoBank
from mjx_metamimic.envs.batching import batched
from mjx_metamimic.render import Renderer
from mjx_metamimic.render.video_file import write_video
from mjx_metamimic.training.actors import select_obs
from mjx_metamimic.training.system import MetaMimic

_BAR_BACKGROUND = (40, 40, 40)
_REWARD_COLOUR = (60, 200, 80)
_DRIFTED_COLOUR = (220, 60, 50)
_PROGRESS_COLOUR = (170, 170, 170)


def resize_nearest(images: jax.Array, size: int) -> jax.Array:
    """Nearest-neighbour resize of (..., H, W, C) images to (..., size, size, C)."""
    rows = jnp.arange(size) * images.shape[-3] // size
    cols = jnp.arange(size) * images.shape[-2] // size
    return images[..., rows, :, :][..., cols, :]


class ImitationVideo:
    """Compiled rollouts of the imitation policy on demos, rendered for side-by-side videos.

    One compilation serves every call with the same number of demos: parameters, the
    bank and the demo indices are arguments of the jitted function.

    Args:
      algo: the run's algorithm (its env, imitation learner and reward config).
      size: height and width (pixels) of each half; even, so that MP4 can encode it.
    """

    def __init__(self, algo: MetaMimic, size: int = 128):
        if size < 2 or size % 2:
            raise ValueError(f"video size must be even and >= 2, got {size}")
        self.algo = algo
        self.size = size
        self.renderer = Renderer(algo.env.mj_model, size, size, camera=algo.config.camera)
        self.max_reward = sum(algo.config.imitation_reward.weights().values())
        self._rollout = jax.jit(self._rollout_all)

    def _render(self, state) -> jax.Array:
        env = self.algo.env
        rgba = env.mjx_model.geom_rgba.at[env.ids.block_geoms].set(state.info["block_rgba"])
        return self.renderer.render_rgb(env.mjx_model, state.pipeline_state, rgba)

    def _rollout_one(self, params, bank: DemoBank, demo_idx):
        actor = self.algo.imitation
        state = actor.start(bank, demo_idx, jax.random.PRNGKey(0))
        act = lambda obs, goal, _: actor.policy.act(params, obs, goal)

        def step(state, t):
            out = actor.follow(bank, state, demo_idx, t, act)
            return out.next_state, (self._render(out.next_state), out.reward, out.drifted)

        _, (frames, reward, drifted) = jax.lax.scan(step, state, jnp.arange(bank.max_steps - 1))
        frames = jnp.concatenate([self._render(state)[None], frames])
        no_step = jnp.zeros((1,))
        return {
            "agent": frames,  # (T, S, S, 3): the start, then after each step
            "demo": resize_nearest(bank.frames[demo_idx], self.size),  # (T, S, S, 3)
            "reward": jnp.concatenate([no_step, reward]),  # (T,) reward of reaching frame t
            "drifted": jnp.concatenate([no_step, jnp.cumsum(drifted) > 0]),  # (T,) so far
        }

    def _rollout_all(self, params, bank: DemoBank, demo_ids):
        episode = lambda i: self._rollout_one(params, bank, i)
        return batched(episode, self.algo.chunk_size)(demo_ids)

    def rollouts(self, params, bank: DemoBank, demo_ids) -> dict[str, np.ndarray]:
        """The agent's and the demos' frames, the step rewards and drift flags.

        Args:
          params: the imitation actor's parameters.
          bank: the demos to follow.
          demo_ids: (N,) indices into ``bank``.

        Returns:
          On the host: ``agent`` and ``demo`` (N, T, S, S, 3) uint8, ``reward`` (N, T)
          (0 at the first frame) and ``drifted`` (N, T), with T the bank's ``max_steps``.
        """
        ids = jnp.asarray(demo_ids, jnp.int32)
        return jax.device_get(self._rollout(params, bank, ids))

    def frames(self, params, bank: DemoBank, demo_ids) -> np.ndarray:
        """The video's frames (T, N * (S + bar), 2 * S, 3) uint8, T the longest demo."""
        out = self.rollouts(params, bank, demo_ids)
        lengths = np.asarray(bank.lengths)[np.asarray(demo_ids)]
        return compose(out, lengths, self.max_reward)

    def write(self, params, bank: DemoBank, path: Path, num_demos: int = 1) -> Path:
        """Writes the video of the policy following the first ``num_demos`` demos of ``bank``
        to ``path`` (its suffix picks GIF or MP4, see ``write_video``); returns ``path``."""
        if not 1 <= num_demos <= bank.num_demos:
            raise ValueError(f"num_demos={num_demos} must be in [1, {bank.num_demos}]")
        frames = self.frames(params, bank, np.arange(num_demos))
        write_video(path, frames, fps=1.0 / self.algo.env.dt)
        return path


class TaskVideo(ImitationVideo):
    """The task policy (no goal, no noise) from each demo's first state - the demo's own
    layout - beside the demo: whether it stacks, and sooner or later than the demo. The
    bar under the agent is full while the blocks are stacked (task reward 1).

    Args:
      algo: the run's algorithm (with a task learner).
      size: as for ``ImitationVideo``.
    """

    def __init__(self, algo: MetaMimic, size: int = 128):
        super().__init__(algo, size)
        self.max_reward = 1.0

    def _rollout_one(self, params, bank: DemoBank, demo_idx):
        state = self.algo.imitation.start(bank, demo_idx, jax.random.PRNGKey(0))
        task = self.algo.learners.learners["task"]

        def step(state, _):
            obs = select_obs(state.obs, self.algo.config.obs_keys)
            state = self.algo.env.step(state, task.act(params, obs))
            return state, (self._render(state), state.reward)

        _, (frames, reward) = jax.lax.scan(step, state, None, length=bank.max_steps - 1)
        no_step = jnp.zeros((1,))
        return {
            "agent": jnp.concatenate([self._render(state)[None], frames]),
            "demo": resize_nearest(bank.frames[demo_idx], self.size),
            "reward": jnp.concatenate([no_step, reward]),
            "drifted": jnp.zeros((bank.max_steps,), bool),
        }


def bar_height(size: int) -> int:
    """Height (pixels, even) of the bar under a ``size`` x ``size`` half."""
    return max(2, size // 16 // 2 * 2)


def _bar(length: int, fraction: np.ndarray, colour: np.ndarray, height: int) -> np.ndarray:
    """(T, height, length, 3) bars filled to ``fraction`` (T,) in per-frame ``colour``."""
    filled = np.arange(length)[None] < np.round(np.clip(fraction, 0, 1) * length)[:, None]
    bar = np.where(filled[..., None], colour[:, None], np.array(_BAR_BACKGROUND, np.uint8))
    return np.repeat(bar[:, None], height, axis=1).astype(np.uint8)


def compose(rollouts: dict[str, np.ndarray], lengths: np.ndarray, max_reward: float) -> np.ndarray:
    """Lays out ``rollouts`` (from ``ImitationVideo.rollouts``) as video frames.

    Each demo is shown for its own length and then holds its last frame.
    """
    num_frames = int(lengths.max())
    size = rollouts["agent"].shape[-2]
    height = bar_height(size)
    rows = []
    for i, length in enumerate(lengths):
        t = np.minimum(np.arange(num_frames), length - 1)
        colour = np.where(
            rollouts["drifted"][i, t, None], np.array(_DRIFTED_COLOUR), np.array(_REWARD_COLOUR)
        ).astype(np.uint8)
        grey = np.broadcast_to(np.array(_PROGRESS_COLOUR, np.uint8), (num_frames, 3))
        images = np.concatenate([rollouts["agent"][i, t], rollouts["demo"][i, t]], axis=2)
        bars = np.concatenate(
            [
                _bar(size, rollouts["reward"][i, t] / max_reward, colour, height),
                _bar(size, t / max(length - 1, 1), grey, height),
            ],
            axis=2,
        )
        rows += [images, bars]
    return np.concatenate(rows, axis=1)
