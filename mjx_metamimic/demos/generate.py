"""Recording demonstrations: the scripted demonstrator drives the env, which renders.

One compiled function records a batch of episodes of ``max_steps`` control steps. At step
``t`` it stores the observation of state ``t`` (frame, proprio, features, task reward), its
simulator state and the action taken there, then steps the env. Frames are the env's own ``pixels``
observation (an env made with ``image_size > 0``), exactly what an agent sees; an env
without pixels records empty (0, 0, 3) frames. The same function replays stored actions (a
per-episode switch selects the given action instead of the demonstrator's), so a replay
runs the very same compiled physics and reproduces a recording bit for bit (given the
same physics engine; on MJX's JAX engine also the same batch size, chunk size, backend and
JAX version: a differently compiled rollout of the same actions drifts apart by float
rounding within tens of steps).

Episode end: a recording succeeds when the task reward, once 1 at step ``t_stack``, stays
1 to the end of the recording (the retreating hand does not disturb the stack) and
``t_stack + settle_steps <= T``. Its length is ``L = t_stack + settle_steps``: the episode
ends a few steps after a stable stack; steps ``t >= L`` are padding that repeats step
``L - 1``. Failed recordings are dropped.
"""

from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from mjx_metamimic.demos.demonstrator import ControllerState, Demonstrator
from mjx_metamimic.demos.format import Demos
from mjx_metamimic.envs.batching import batched
from mjx_metamimic.envs.stack import SimState, StackEnv


def demo_keys(layout_seed: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The (env reset, demonstrator) keys of the demo with integer ``layout_seed``."""
    reset_key, controller_key = jax.random.split(jax.random.PRNGKey(layout_seed))
    return reset_key, controller_key


def layout_seeds(seed: int, start: int, count: int) -> np.ndarray:
    """Per-demo seeds (count,) uint32 of candidates ``start .. start+count-1`` of ``seed``."""
    return np.array(
        [
            np.random.SeedSequence(seed, spawn_key=(index,)).generate_state(1)[0]
            for index in range(start, start + count)
        ],
        dtype=np.uint32,
    )


class Recorder:
    """Records (or replays) batches of ``batch_size`` episodes with one compiled function.

    Args:
      env: the stacking env.
      demonstrator: the scripted controller that drives recordings.
      max_steps: recorded control steps per episode (T).
      batch_size: episodes per compiled call; replays are padded to it, so that a replay
        runs exactly the executable that recorded the demos.
      chunk_size: most episodes vmapped together (see ``envs.batching``; use
        ``env.step_chunk_size``); None vmaps the whole batch at once.
    """

    def __init__(
        self,
        env: StackEnv,
        demonstrator: Demonstrator,
        max_steps: int,
        batch_size: int,
        chunk_size: int | None = None,
    ):
        if max_steps < 2 or batch_size < 1:
            raise ValueError(
                f"need max_steps >= 2 and batch_size >= 1, got {max_steps}, {batch_size}"
            )
        self.env = env
        self.demonstrator = demonstrator
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self._run = jax.jit(batched(self._record_one, chunk_size))
        self._initial = jax.jit(jax.vmap(self._initial_one))

    def initial(self, seeds: np.ndarray) -> tuple[SimState, ControllerState]:
        """Initial simulator and demonstrator states (batched) of the layout ``seeds`` (B,)."""
        return self._initial(np.asarray(seeds, np.uint32))

    def _initial_one(self, layout_seed):
        reset_key, controller_key = demo_keys(layout_seed)
        state = self.env.reset(reset_key)
        return self.env.sim_state(state), self.demonstrator.init(controller_key)

    def _record_one(self, init_state, controller, given_actions, replay):
        # init_state: SimState; given_actions: (T, 7); replay: () bool
        env = self.env
        env_key, controller_key = jax.random.split(controller.key)
        state = env.reset_to(env_key, init_state)
        controller = controller.replace(key=controller_key)

        def step(carry, given_action):
            state, controller = carry
            action, controller = self.demonstrator.act(controller, state)
            action = jnp.where(replay, given_action, action)
            out = (
                state.obs.get("pixels", jnp.zeros((0, 0, 3), jnp.uint8)),
                state.obs["proprio"],
                state.obs["features"],
                state.reward,
                action,
                env.sim_state(state),
            )
            return (env.step(state, action), controller), out

        _, (frames, proprio, features, reward, actions, states) = jax.lax.scan(
            step, (state, controller), given_actions
        )
        return Demos(
            frames=frames,
            proprio=proprio,
            features=features,
            task_reward=reward,
            lengths=jnp.int32(given_actions.shape[0]),
            init_state=init_state,
            privileged_actions=actions,
            states=states,
        )

    def _empty_actions(self):
        return jnp.zeros((self.batch_size, self.max_steps, self.env.action_size))

    def record(self, seeds: np.ndarray) -> Demos:
        """Records one batch of episodes driven by the demonstrator.

        Args:
          seeds: (batch_size,) uint32 layout seeds (see ``demo_keys``).

        Returns:
          The whole recordings (lengths ``max_steps``; ``to_demos`` cuts them), with the
          demonstrator's actions as ``privileged_actions`` and ``seeds`` as ``layout_seed``.
        """
        seeds = np.asarray(seeds, np.uint32)
        if seeds.shape != (self.batch_size,):
            raise ValueError(f"need {self.batch_size} seeds, got shape {seeds.shape}")
        init_state, controller = self.initial(seeds)
        replay = jnp.zeros((self.batch_size,), bool)
        recording = self._run(init_state, controller, self._empty_actions(), replay)
        return recording.replace(layout_seed=seeds)

    def replay(self, init_state: SimState, actions: np.ndarray) -> Demos:
        """Replays ``actions`` (N, T, 7) from ``init_state`` (leaves (N, ...)), N <= batch_size.

        The result matches the recording that produced the actions exactly (frames,
        proprio, features, reward) when this recorder has the same configuration.
        """
        n = actions.shape[0]
        if not 0 < n <= self.batch_size or actions.shape[1:] != (
            self.max_steps,
            self.env.action_size,
        ):
            raise ValueError(
                f"replay takes 1 to {self.batch_size} action sequences of shape "
                f"({self.max_steps}, {self.env.action_size}), got {actions.shape}"
            )
        pad = lambda x: np.concatenate([x, np.repeat(x[:1], self.batch_size - n, axis=0)])
        init_state = jax.tree.map(lambda x: pad(np.asarray(x)), init_state)
        # The demonstrator's state is unused in a replay; any valid one will do.
        _, controller = self.initial(np.zeros((self.batch_size,), np.uint32))
        replay = jnp.ones((self.batch_size,), bool)
        recording = self._run(init_state, controller, pad(np.asarray(actions, np.float32)), replay)
        return jax.tree.map(lambda x: x[:n], recording)


def episode_ends(task_reward: np.ndarray, settle_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Success and episode length of each recording (see the module docstring).

    Args:
      task_reward: (B, T) task reward per step.
      settle_steps: steps kept from the start of the final, stable stack.

    Returns:
      success (B,) bool, and length (B,) int32 (0 where unsuccessful). A successful
      episode's stable stack starts at step ``length - settle_steps``.
    """
    steps = task_reward.shape[1]
    stacked = task_reward > 0.5
    # Start of the final run of stacked steps (T where the last step is not stacked).
    last_unstacked = np.where(~stacked, np.arange(steps)[None], -1).max(axis=1)
    t_stack = last_unstacked + 1
    success = t_stack + settle_steps <= steps
    length = np.where(success, t_stack + settle_steps, 0).astype(np.int32)
    return success, length


def pad_after(x: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Repeats step ``length[i] - 1`` of ``x[i]`` (B, T, ...) over steps ``>= length[i]``."""
    t = np.arange(x.shape[1])
    index = np.minimum(t[None], length[:, None] - 1)  # (B, T)
    return np.take_along_axis(x, index.reshape(*index.shape, *([1] * (x.ndim - 2))), axis=1)


def to_demos(recording: Demos, settle_steps: int) -> tuple[Demos, dict]:
    """Keeps the successful recordings, cut to their length and padded (host numpy).

    Args:
      recording: a batch of B whole recordings, as ``Recorder.record`` returns it.
      settle_steps: steps kept from the start of the final, stable stack.

    Returns:
      The successful demos (with privileged actions) and the batch statistics
      {"attempts": B, "kept": (n,) their positions in the batch, "lengths": (n,),
      "steps_to_stack": (n,)}.
    """
    rec = jax.tree.map(np.asarray, recording)
    success, length = episode_ends(rec.task_reward, settle_steps)
    keep = np.flatnonzero(success)
    length = length[keep]
    demos = Demos(
        frames=pad_after(rec.frames[keep], length),
        proprio=pad_after(rec.proprio[keep], length),
        features=pad_after(rec.features[keep], length),
        task_reward=pad_after(rec.task_reward[keep], length),
        lengths=length,
        init_state=jax.tree.map(lambda x: x[keep], rec.init_state),
        layout_seed=rec.layout_seed[keep],
        privileged_actions=pad_after(rec.privileged_actions[keep], length),
        states=jax.tree.map(lambda x: pad_after(x[keep], length), rec.states),
    )
    stats = {
        "attempts": len(success),
        "kept": keep,
        "lengths": length,
        "steps_to_stack": length - settle_steps,
    }
    return demos, stats


def generate(
    recorder: Recorder, num_demos: int, seed: int, settle_steps: int, min_success_rate: float = 0.5
) -> Iterator[tuple[Demos, dict]]:
    """Records batches until ``num_demos`` successful demos exist; yields them per batch.

    Candidates are numbered 0, 1, 2, ... with ``layout_seeds(seed, ...)``, so the same
    arguments always give the same demos in the same order.

    Yields:
      (demos, stats) per recorded batch, as ``to_demos`` returns them; the last batch is
      cut so that exactly ``num_demos`` demos are yielded in all.

    Raises:
      RuntimeError: fewer than ``min_success_rate`` of the candidates succeed.
    """
    kept, attempts = 0, 0
    while kept < num_demos:
        seeds = layout_seeds(seed, attempts, recorder.batch_size)
        demos, stats = to_demos(recorder.record(seeds), settle_steps)
        take = min(demos.num_demos, num_demos - kept)
        if take < demos.num_demos:
            # Candidates after the last kept one were never needed: don't count them.
            demos = demos.take(range(take))
            stats = {
                "attempts": int(stats["kept"][take - 1]) + 1,
                **{k: stats[k][:take] for k in ("lengths", "steps_to_stack", "kept")},
            }
        kept += take
        attempts += stats["attempts"]
        if attempts >= 2 * recorder.batch_size and kept < min_success_rate * attempts:
            raise RuntimeError(
                f"only {kept} of {attempts} demonstrations succeeded; check the scene physics"
            )
        yield demos, stats
