"""The fused MetaMimic training chunk: K actor steps for E envs, then U learner updates.

``MetaMimic.train_chunk(state, bank) -> (state, metrics)`` is one jittable function (jit
it with the state donated). The E envs are split into consecutive groups, one per actor
(``training.actors``): imitation actors first, then task actors. The K steps are
collected by a ``lax.scan`` whose outputs (not its carry) hold the transitions, then
appended to the replay in one write; the learners' scan only reads the replay. Nothing
large rides in a scan carry.

Baselines (``TrainConfig`` switches, all off by default): task actors on the last
``num_task_envs`` envs; without an imitation learner every env is a task actor
(task-reward-only D4PG); D4PGfD mixes the demos' transitions with their privileged
actions into every batch. Transitions the imitation learner must not learn from (task
actors', demos') carry ``extras["imitation_weight"]`` 0, which weighs its losses.

On a mesh (``training.sharding``) each device runs these functions on its share under
``shard_map``: ``num_devices`` > 1 makes the learners sum gradients across ``DATA_AXIS``,
the actors' metrics averages over it, and each device's randomness its own.
"""

import flax.struct
import jax
import jax.numpy as jnp
from brax.envs.base import State

from mjx_metamimic import demos as demo_lib
from mjx_metamimic.agents import D4PG, LearnerBatch, MultiD4PG, scan_sampled_updates
from mjx_metamimic.demos import DemoBank
from mjx_metamimic.demos.transitions import demo_sequences
from mjx_metamimic.envs.stack import StackEnv
from mjx_metamimic.replay import NStepReplay, ReplayState, Transition, Windows, nstep_batch
from mjx_metamimic.training.actors import ImitationActor, TaskActor, select_obs, step_extras
from mjx_metamimic.training.config import TrainConfig
from mjx_metamimic.training.input_scales import with_input_scales

DATA_AXIS = "data"
# Uniform candidates per success-mixed sample (``learner.success_fraction``): enough to
# fill the share when ~1 step in 16 goes on to a stack.
SUCCESS_CANDIDATES = 16


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training (one pytree, donated to each chunk)."""

    learners: dict  # name -> D4PGState
    replay: ReplayState
    env_state: State  # leaves (E, ...)
    demo_idx: jax.Array  # (E,) int32 training demo each env follows (task actors: started in)
    t: jax.Array  # (E,) int32 step within the demo (task actors: within the episode)
    key: jax.Array
    env_steps: jax.Array  # () int32, summed over envs
    updates: jax.Array  # () int32
    chunks: jax.Array  # () int32


class EnvGroups:
    """The env axis as consecutive named groups (empty groups left out).

    Args:
      sizes: group name -> number of envs, in env order.
    """

    def __init__(self, sizes: dict[str, int]):
        self.sizes = {name: size for name, size in sizes.items() if size}

    def split(self, tree) -> dict:
        """Per-env leaves (E, ...) -> {group: leaves (size, ...)}."""
        if len(self.sizes) == 1:
            return {name: tree for name in self.sizes}
        groups, start = {}, 0
        for name, size in self.sizes.items():
            groups[name] = jax.tree.map(lambda x, s=start, n=size: x[s : s + n], tree)
            start += size
        return groups

    def join(self, groups: dict):
        """The inverse of ``split``: concatenates the groups' leaves in env order."""
        parts = [groups[name] for name in self.sizes]
        if len(parts) == 1:
            return parts[0]
        return jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)


class MetaMimic:
    """The pure functions of a MetaMimic run: ``init``, ``collect``, ``learn`` and the
    fused ``train_chunk``.

    Args:
      config: the run config; on a mesh, one device's share of it
        (``sharding.per_device_config``).
      env: the stacking env (with pixels iff ``config.image_size``).
      num_devices: devices along ``DATA_AXIS`` running these functions together.
    """

    def __init__(self, config: TrainConfig, env: StackEnv, num_devices: int = 1):
        self.config = config
        self.env = env
        self.num_devices = num_devices
        axis = DATA_AXIS if num_devices > 1 else None
        self.learners = MultiD4PG(
            {
                name: D4PG(c, env.action_size, axis_name=axis)
                for name, c in config.learner_configs().items()
            }
        )
        # learner -> its own n-step return where it sets one (``D4PGConfig.n_step``)
        self.own_n_steps = {
            name: c.n_step for name, c in config.learner_configs().items() if c.n_step
        }
        self.replay = NStepReplay(
            config.replay, config.actors.num_envs, max(self.own_n_steps.values(), default=0)
        )
        self.chunk_size = env.step_chunk_size
        # Store per-transition imitation weights only when some transitions need weight 0.
        self.weighted = bool(config.num_task_envs or config.demo_batch_size)
        num_task = config.num_task_envs
        self.imitation = ImitationActor(
            env,
            config,
            self.learners.learners.get("imitation"),
            config.actors.num_envs - num_task,
            self.chunk_size,
            self.weighted,
        )
        self.actors = {"imitation": self.imitation}
        if num_task:
            task_policy = self.learners.learners["task"]
            self.actors["task"] = TaskActor(
                env, config, task_policy, self.chunk_size, self.weighted
            )
        self.groups = EnvGroups({"imitation": self.imitation.num_envs, "task": num_task})

    @property
    def trains_imitation(self) -> bool:
        """Whether there is an imitation learner (false for task-only D4PG)."""
        return "imitation" in self.learners.learners

    # ------------------------------------------------------------------ actors
    def reset_envs(self, bank: DemoBank, key: jax.Array) -> tuple[State, jax.Array]:
        """Resets all E envs, each group with its actor. Returns states (E, ...) and
        demo_idx (E,)."""
        keys = self.groups.split(jax.random.split(key, self.config.actors.num_envs))
        return self.groups.join(
            {name: self.actors[name].reset(bank, k) for name, k in keys.items()}
        )

    def _step_envs(self, learners, bank, env_state, demo_idx, t, keys):
        """One step of every env, each group with its actor: (Transition, metrics, next
        states, last)."""
        groups = self.groups.split((env_state, demo_idx, t, keys))
        outs, metrics = {}, {}
        for name, args in groups.items():
            actor = self.actors[name]
            outs[name] = actor.step(learners, bank, *args)
            metrics.update({actor.metrics_prefix + k: v for k, v in outs[name][1].items()})
        stored, next_state, last = (
            self.groups.join({name: out[i] for name, out in outs.items()}) for i in (0, 2, 3)
        )
        return stored, metrics, next_state, last

    def collect(self, state: TrainState, bank: DemoBank) -> tuple[TrainState, Transition, dict]:
        """K env steps of every env: returns the state, transitions (E, K, ...) and mean
        metrics (imitation actors' unprefixed; task actors' under ``task_actor/``)."""
        num_envs = self.config.actors.num_envs

        def one_step(carry, _):
            env_state, demo_idx, t, key = carry
            key, key_step, key_reset = jax.random.split(key, 3)
            stored, metrics, next_state, last = self._step_envs(
                state.learners, bank, env_state, demo_idx, t, jax.random.split(key_step, num_envs)
            )

            # Reset finished envs; skipped (a real branch, outside vmap) in steps where no
            # episode ended, which is most of them.
            def reset_finished(_):
                fresh, fresh_idx = self.reset_envs(bank, key_reset)
                pick = lambda new, old: jnp.where(
                    last.reshape(last.shape + (1,) * (new.ndim - 1)), new, old
                )
                return (
                    jax.tree.map(pick, fresh, next_state),
                    jnp.where(last, fresh_idx, demo_idx),
                )

            env_state, demo_idx = jax.lax.cond(
                jnp.any(last), reset_finished, lambda _: (next_state, demo_idx), None
            )
            t = jnp.where(last, 0, t + 1)
            return (env_state, demo_idx, t, key), (stored, metrics)

        carry = (state.env_state, state.demo_idx, state.t, state.key)
        (env_state, demo_idx, t, key), (steps, metrics) = jax.lax.scan(
            one_step, carry, None, length=self.config.actors.steps_per_chunk
        )
        steps = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), steps)  # (K, E) -> (E, K)
        state = state.replace(
            env_state=env_state,
            demo_idx=demo_idx,
            t=t,
            key=key,
            env_steps=state.env_steps
            + num_envs * self.config.actors.steps_per_chunk * self.num_devices,
        )
        return state, steps, self._across_devices(jax.tree.map(jnp.mean, metrics))

    def _device_key(self, key: jax.Array) -> jax.Array:
        """This device's key on a mesh (the run key folded with its index); else ``key``."""
        if self.num_devices == 1:
            return key
        return jax.random.fold_in(key, jax.lax.axis_index(DATA_AXIS))

    def _across_devices(self, metrics: dict) -> dict:
        """Per-device means -> means over all devices (equal shares each)."""
        return metrics if self.num_devices == 1 else jax.lax.pmean(metrics, DATA_AXIS)

    # ---------------------------------------------------------------- learners
    def sample_learner_batch(
        self, replay: ReplayState, bank: DemoBank, key: jax.Array
    ) -> tuple[LearnerBatch, jax.Array]:
        """A learner batch (agent replay, plus demo transitions for D4PGfD; the imitation
        learner's goals and weights; the n-step transitions of learners with their own n)
        and a key for the learners' own randomness.

        With success mixing (``success_batch_size`` M > 0) the rows are [M success-mixed |
        uniform | demos | M uniform]: the task learner reads the first B, the imitation
        learner the last B, so its batch stays uniform."""
        cfg = self.config
        key, key_learners = jax.random.split(key)
        demo_size = cfg.demo_batch_size
        if demo_size:
            key, key_demo = jax.random.split(key)
        mixed = cfg.success_batch_size if self.trains_imitation else 0
        if mixed:
            key, key_extra = jax.random.split(key)
        task_windows = self.sample_windows(replay, key, cfg.learner.batch_size - demo_size)
        parts = [task_windows]
        if mixed:
            parts.append(self.replay.sample_windows(replay, key_extra, mixed))
        windows = jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)
        sequences = [self.replay.gather(replay, w) for w in parts]
        if demo_size:
            demos = demo_sequences(
                bank, key_demo, demo_size, self.replay.sequence_length, cfg.obs_keys
            )
            sequences.insert(1, demos)
        num_task = task_windows.rows.shape[0]

        def labels(c):
            # Demo transitions are never labelled as reaching the reward: a "success"
            # filter regresses only onto the actors' own actions.
            agent = self.replay.reaches_reward(replay, windows, c.stream, c.success_horizon)
            demos = jnp.zeros((demo_size,), bool)
            return jnp.concatenate([agent[:num_task], demos, agent[num_task:]])

        reaches = {
            name: labels(c) for name, c in cfg.learner_configs().items() if c.regresses_by_success
        }

        def transitions_for(n_step: int):
            nsteps = [nstep_batch(s, n_step, cfg.replay.gamma) for s in sequences]
            return jax.tree.map(lambda *xs: jnp.concatenate(xs), *nsteps)

        transitions = transitions_for(cfg.replay.n_step)
        own = {
            name: transitions_for(n)
            for name, n in self.own_n_steps.items()
            if n != cfg.replay.n_step
        }
        holding = None
        if any(c.regresses_by_held for c in cfg.learner_configs().values()):
            holding = self.env.holds_block(transitions.obs)
        batch_size = cfg.learner.batch_size
        rows = (("task", 0, batch_size), ("imitation", mixed, mixed + batch_size)) if mixed else ()
        if not self.trains_imitation:
            batch = LearnerBatch(
                transitions,
                own_transitions=own or None,
                reaches_reward=reaches or None,
                holding=holding,
            )
            return batch, key_learners
        extras, next_extras = transitions.extras, transitions.next_extras
        pausing = None
        if any(c.regresses_by_pause for c in cfg.learner_configs().values()):
            pausing = demo_lib.paused(bank, extras["demo_idx"], extras["t"])
            if self.weighted:  # task actors' and demos' rows follow no imitation actor's demo
                pausing = pausing & (extras["imitation_weight"] > 0)
        batch = LearnerBatch(
            transitions,
            goal=self.imitation.goal(bank, extras["demo_idx"], extras["t"]),
            next_goal=self.imitation.goal(bank, next_extras["demo_idx"], next_extras["t"]),
            weights={"imitation": extras["imitation_weight"]} if self.weighted else None,
            own_transitions=own or None,
            reaches_reward=reaches or None,
            holding=holding,
            pausing=pausing,
            rows=rows,
        )
        return batch, key_learners

    def sample_windows(self, replay: ReplayState, key: jax.Array, size: int) -> Windows:
        """The task learner's ``size`` replay windows: the first ``success_batch_size`` of
        them chosen at random among uniform candidates whose episode goes on to the task
        reward (the other candidates fill in when too few do), the rest uniform."""
        mixed = self.config.success_batch_size
        if not mixed:
            return self.replay.sample_windows(replay, key, size)
        key_uniform, key_pool, key_pick = jax.random.split(key, 3)
        uniform = self.replay.sample_windows(replay, key_uniform, size - mixed)
        pool = self.replay.sample_windows(replay, key_pool, SUCCESS_CANDIDATES * mixed)
        horizon = self.config.learner.task.success_horizon
        reaching = self.replay.reaches_reward(replay, pool, "task", horizon)
        priority = jax.random.uniform(key_pick, reaching.shape) + reaching
        _, picked = jax.lax.top_k(priority, mixed)
        return jax.tree.map(lambda a, b: jnp.concatenate([a[picked], b]), pool, uniform)

    def learn(self, state: TrainState, bank: DemoBank) -> tuple[TrainState, dict]:
        """U learner updates from the replay (skipped until it holds ``min_size`` steps)."""
        num_updates = self.config.learner.updates_per_chunk
        key, key_learn = jax.random.split(state.key)

        def run(learners):
            return scan_sampled_updates(
                lambda learners, sampled: self.learners.update(learners, *sampled),
                lambda k: self.sample_learner_batch(state.replay, bank, k),
                learners,
                key_learn,
                num_updates,
            )

        def skip(learners):
            zeros = jax.eval_shape(run, learners)[1]
            return learners, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), zeros)

        ready = self.replay.can_sample(state.replay) & (num_updates > 0)
        learners, metrics = jax.lax.cond(ready, run, skip, state.learners)
        updates = state.updates + jnp.where(ready, num_updates, 0)
        return state.replace(learners=learners, key=key, updates=updates), metrics

    # ------------------------------------------------------------------- chunk
    def train_chunk(self, state: TrainState, bank: DemoBank) -> tuple[TrainState, dict]:
        """Collect K steps per env, store them, then run U learner updates."""
        run_key = state.key
        state = state.replace(key=self._device_key(run_key))
        state, steps, actor_metrics = self.collect(state, bank)
        state = state.replace(replay=self.replay.add_sequence(state.replay, steps))
        state, learner_metrics = self.learn(state, bank)
        state = state.replace(chunks=state.chunks + 1)
        if self.num_devices > 1:  # the stored key stays the same on every device
            state = state.replace(key=jax.random.split(run_key)[0])
        metrics = {
            **{f"train/{k}": v for k, v in actor_metrics.items()},
            **learner_metrics,
            "train/replay_size": self.replay.size(state.replay) * self.num_devices,
            "train/env_steps": state.env_steps,
            "train/updates": state.updates,
        }
        return state, metrics

    def init(self, key: jax.Array, bank: DemoBank) -> TrainState:
        """The initial training state: fresh learners, empty replay, envs on demos."""
        key, key_env, key_learn = jax.random.split(key, 3)
        env_state, demo_idx = self.reset_envs(bank, self._device_key(key_env))
        one_obs = select_obs(jax.tree.map(lambda x: x[0], env_state.obs), self.config.obs_keys)
        zero = jnp.zeros((), jnp.int32)
        goal = self.imitation.goal(bank, demo_idx[0], zero) if self.trains_imitation else None
        learners = self.learners.init(key_learn, one_obs, goal)
        if self.config.learner.network.standardize_inputs:
            learners = with_input_scales(learners, bank, self.config.obs_keys)
        example_step = Transition(
            obs=one_obs,
            action=jnp.zeros(self.env.action_size),
            reward={"imitation": jnp.zeros(()), "task": jnp.zeros(())},
            discount=jnp.zeros(()),
            last=jnp.zeros((), bool),
            extras=step_extras(zero, zero, 0.0, self.weighted),
        )
        num_envs = self.config.actors.num_envs
        state = TrainState(
            learners=learners,
            replay=self.replay.init(example_step),
            env_state=env_state,
            demo_idx=demo_idx,
            t=jnp.zeros((num_envs,), jnp.int32),
            key=key,
            env_steps=jnp.zeros((), jnp.int32),
            updates=jnp.zeros((), jnp.int32),
            chunks=jnp.zeros((), jnp.int32),
        )
        # Target networks start as the online ones: copy so that no two leaves share a
        # buffer (the chunk donates the whole state).
        return jax.tree.map(jnp.copy, state)
