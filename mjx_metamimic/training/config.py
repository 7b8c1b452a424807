"""The training run's config: frozen dataclasses, loaded by name from train/*.toml."""

import dataclasses
from pathlib import Path
from typing import Literal

from mjx_metamimic.agents import D4PGConfig
from mjx_metamimic.envs.stack import ACTION_SIZE, StackEnvConfig
from mjx_metamimic.imitation_reward import ImitationRewardConfig
from mjx_metamimic.networks import NetworkConfig
from mjx_metamimic.replay import ReplayConfig


def split_batch_size(batch_size: int, fractions: tuple[float, ...]) -> tuple[int, ...]:
    """Splits ``batch_size`` into integer parts proportional to ``fractions`` (summing exactly).

    Uses largest remainders, so e.g. (256, (0.75, 0.25)) -> (192, 64).
    """
    total = float(sum(fractions))
    if total <= 0 or any(f < 0 for f in fractions):
        raise ValueError(f"fractions must be non-negative with a positive sum, got {fractions}")
    exact = [batch_size * f / total for f in fractions]
    parts = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: parts[i] - exact[i])
    for i in by_remainder[: batch_size - sum(parts)]:
        parts[i] += 1
    return tuple(parts)


@dataclasses.dataclass(frozen=True)
class DemoSpec:
    """Which demonstrations to train on; generated with these settings when missing."""

    path: Path = Path("data/demos")
    """Dataset directory (made by ``mjx-metamimic demos``)."""
    num: int = 64
    """Demos to generate when the dataset does not exist yet."""
    seed: int = 0
    """Seed of generated demos."""
    image_size: int = 64
    """Frame size of the demos (must match ``TrainConfig.image_size`` when pixels are used)."""
    max_steps: int = 200
    """Control steps per generated demo."""
    settle_steps: int = 10
    """Steps a generated demo goes on after its stack becomes stable (release and retreat)."""
    num_train: int = 0
    """Train on only the first ``num_train`` demos of the training split (0: all of them);
    the validation split is unchanged (the paper's Fig. 5 varies this)."""


@dataclasses.dataclass(frozen=True)
class ActorConfig:
    """The actors: E envs. Imitation actors follow one training demo at a time; task actors
    (``task_fraction`` of the envs, or all of them without an imitation learner) run the
    task policy from fresh layouts or, with ``task_reset="curriculum"``, from demo states."""

    num_envs: int = 32
    """Envs stepped in parallel (E)."""
    steps_per_chunk: int = 10
    """Env steps per env in one jitted training chunk (K)."""
    noise_std: float = 0.1
    """Std of the Gaussian exploration noise added to the policy's action (then clipped)."""
    lookahead: int = 1
    """The goal at step t is the demo's observation at t + lookahead."""
    task_fraction: float = 0.0
    """Share of the E envs (rounded to a whole number, the last ones) that run the task
    actor: the task policy (no goal) + the same exploration noise. Their transitions go to
    the same replay with weight 0 for the imitation learner. In [0, 1); ignored (all envs
    are task actors) when ``learner.train_imitation`` is false."""
    task_episode_steps: int = 150
    """Steps of a task-actor episode before it restarts (time-limit truncation)."""
    gripper_guided_fraction: float = 0.0
    """Share of the imitation-actor envs (rounded, the first ones) whose gripper command is
    taken from the goal instead of the policy: the command that holds the goal's finger gap
    (-1 where the goal's fingers hold a block). Shows the critic grasps and releases at the
    demos' moments, which Gaussian noise on a shut gripper cannot (commands below about +0.2
    leave a held block's gap unchanged). A demo-informed exploration heuristic, not in the
    paper; evaluation never guides. In [0, 1], at least one env; ignored without the
    imitation learner."""
    task_reset: Literal["layout", "curriculum", "demo"] = "layout"
    """Where task-actor episodes start: "layout" a fresh random block layout (``env.reset``);
    "curriculum" the simulator state at a uniformly random step of a random training demo
    (the demo-curriculum baseline; needs a dataset with per-step ``states``); "demo" a
    random training demo's first state (its layout), the episode's steps counted as the
    demo's, so that the imitation learner can label the states the task policy visits
    (``learner.task.bc_target="imitation"``). The task policy never sees the demo."""


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
    """The imitation and task learners (D4PG), trained from the same replay batches."""

    batch_size: int = 128
    """Transitions per update."""
    updates_per_chunk: int = 8
    """Learner updates in one jitted training chunk (U)."""
    network: NetworkConfig = NetworkConfig()
    """Architecture of both learners' actors and critics."""
    imitation: D4PGConfig = D4PGConfig(
        stream="imitation", goal_conditioned=True, v_min=0.0, v_max=100.0
    )
    """The goal-conditioned imitation learner (imitation reward). Both learners use
    ``LearnerConfig.network``; setting their own ``network`` is a config error."""
    task: D4PGConfig = D4PGConfig(stream="task", goal_conditioned=False, v_min=0.0, v_max=100.0)
    """The task learner (sparse task reward, no goal)."""
    train_task: bool = True
    """Also train the task policy from the same replay."""
    train_imitation: bool = True
    """Train the imitation policy (MetaMimic). False gives the task-reward-only D4PG
    baseline: no imitation actors and no imitation learner; every env is a task actor
    (needs ``train_task``)."""
    demo_fraction: float = 0.0
    """D4PGfD: share of every learner batch drawn from the training demos' own transitions
    with their privileged actions (task reward from the demo; weight 0 for the imitation
    learner, which never sees demo actions). In [0, 1); needs a dataset with
    ``privileged_actions``; 0 disables."""
    success_fraction: float = 0.0
    """Share of the replay's part of the task learner's batch drawn from steps whose
    episode goes on to the task reward within ``task.success_horizon`` steps (as RLPD
    mixes its successful data 50/50; here chosen among 16x as many uniform candidates),
    the rest uniform: the task learner sees the rare stacks, and the steps leading to
    them, in every batch. The imitation learner gets uniform rows in their place: its
    batch stays uniform. In [0, 1); 0 disables."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Run length, logging, evaluation and checkpoints."""

    seed: int = 0
    """Seed of everything random in the run."""
    max_minutes: float = 15.0
    """Wall-clock training budget (compile time excluded)."""
    max_env_steps: int = 10_000_000
    """Stop after this many env steps."""
    max_updates: int = 0
    """Stop after this many learner updates (0: no limit). Budgets in env steps or updates
    compare across machines; ``max_minutes`` is then only a safety cap."""
    log_every: int = 20
    """Chunks between progress lines and metric rows."""
    max_nonfinite_updates: int = 100
    """Stop the run with an error once a learner has skipped this many gradient steps in a
    row for a NaN or infinite gradient (each such step is skipped and counted in
    ``train/<learner>/nonfinite_updates``; the parameters stay finite). Checked at every
    log row (``log_every``)."""
    eval_every: int = 200
    """Chunks between evaluations on validation demos (0: only at the end)."""
    eval_task_episodes: int = 16
    """Fresh layouts the task policy plays at each evaluation. Its success rate is a few
    percent in CPU runs, where 16 layouts read 0-2 stacks: 128 tell runs apart."""
    checkpoint_every: int = 200
    """Chunks between checkpoints (0: only at the end)."""
    out_dir: Path = Path("runs")
    """Parent directory of run directories."""
    eval_train_demos: int = 0
    """The final evaluation also imitates the first ``eval_train_demos`` training demos
    (``eval_train/agent/...`` in eval.json; 0: no): how much of the held-out score is lost
    to demos never trained on (the paper's Fig. 5)."""
    video_demos: int = 1
    """Validation demos in the final video of the imitation policy beside them (0: no video)."""
    video_size: int = 128
    """Height and width (pixels, even) of the agent's and the demo's halves of that video."""
    compilation_cache: bool = True
    """Keep compiled programs in ``<out_dir>/.jax_cache`` (JAX's persistent compilation
    cache), so that the next run of the same config skips most of its compilation; a cache
    set with ``JAX_COMPILATION_CACHE_DIR`` is used instead."""


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Where the run's work goes: a mesh of devices with one data axis (``jax.sharding``)."""

    devices: int = 1
    """Devices on the data axis (0: all visible). Each device steps ``num_envs / devices``
    envs and keeps their transitions in its own replay shard; each learner update samples
    ``batch_size / devices`` transitions from every shard and sums the gradients across
    devices (parameters replicated). The default stays 1 until ``bench scaling`` on an
    accelerator box says more pays (docs/benchmarks.md)."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a MetaMimic training run needs."""

    name: str = "cpu"
    """Name of the run config (used for the run directory)."""
    image_size: int = 64
    """Pixel observations of this size (square); 0 trains from privileged features."""
    camera: str = "front"
    """Camera the pixel observations come from."""
    env: StackEnvConfig = StackEnvConfig()
    demos: DemoSpec = DemoSpec()
    imitation_reward: ImitationRewardConfig = ImitationRewardConfig()
    actors: ActorConfig = ActorConfig()
    learner: LearnerConfig = LearnerConfig()
    replay: ReplayConfig = ReplayConfig()
    run: RunConfig = RunConfig()
    mesh: MeshConfig = MeshConfig()

    def __post_init__(self):
        problems = []
        if self.image_size < 0:
            problems.append(f"image_size={self.image_size} must be >= 0")
        if self.image_size and self.image_size != self.demos.image_size:
            problems.append(
                f"image_size={self.image_size} differs from demos.image_size="
                f"{self.demos.image_size}: goals must be frames of the same size"
            )
        if not self.image_size and self.imitation_reward.pixels_weight:
            problems.append("imitation_reward.pixels_weight > 0 needs pixels (image_size > 0)")
        if self.learner.network.reads_pixels and not self.image_size:
            problems.append("learner.network.inputs='pixels' needs image_size > 0")
        for name in ("imitation", "task"):
            if getattr(self.learner, name).network != NetworkConfig():
                problems.append(
                    f"learner.{name}.network is not used: both learners share "
                    "learner.network, set that instead"
                )
            learner = getattr(self.learner, name)
            if learner.aux_features_weight and not self.learner.network.shared_torso:
                problems.append(
                    f"learner.{name}.aux_features_weight > 0 needs learner.network.shared_torso"
                )
            try:  # the learner's own checks, against the network it will be given
                dataclasses.replace(getattr(self.learner, name), network=self.learner.network)
            except ValueError as error:
                problems.append(f"learner.{name}: {error}")
        if self.actors.num_envs < 1 or self.actors.steps_per_chunk < 1:
            problems.append("actors.num_envs and actors.steps_per_chunk must be >= 1")
        if self.learner.batch_size < 1 or self.learner.updates_per_chunk < 0:
            problems.append("learner.batch_size must be >= 1, updates_per_chunk >= 0")
        if self.demos.num_train < 0:
            problems.append(f"demos.num_train={self.demos.num_train} must be >= 0 (0: all)")
        if self.learner.batch_size > self.replay.capacity:
            problems.append(
                f"learner.batch_size={self.learner.batch_size} exceeds replay.capacity="
                f"{self.replay.capacity}"
            )
        own_n = self.learner.imitation.n_step
        if own_n and own_n != self.replay.n_step:
            problems.append(
                f"learner.imitation.n_step={own_n} differs from replay.n_step="
                f"{self.replay.n_step}: the imitation learner's goals follow the replay's "
                "n-step; set replay.n_step instead"
            )
        if self.run.max_nonfinite_updates < 1:
            problems.append(
                f"run.max_nonfinite_updates={self.run.max_nonfinite_updates} must be >= 1"
            )
        if self.run.eval_task_episodes < 1:
            problems.append(f"run.eval_task_episodes={self.run.eval_task_episodes} must be >= 1")
        if self.run.eval_train_demos < 0:
            problems.append(f"run.eval_train_demos={self.run.eval_train_demos} must be >= 0")
        if self.run.max_updates < 0 or self.run.max_env_steps < 1:
            problems.append("run.max_updates must be >= 0 (0: no limit), run.max_env_steps >= 1")
        if self.env.impl == "warp" and self.actors.num_envs > self.env.warp_max_envs:
            problems.append(
                f"actors.num_envs={self.actors.num_envs} exceeds env.warp_max_envs="
                f"{self.env.warp_max_envs}, the envs the Warp engine's contact buffer is sized for"
            )
        if self.replay.min_size > self.replay.capacity:
            problems.append(
                f"replay.min_size={self.replay.min_size} exceeds replay.capacity="
                f"{self.replay.capacity}: the learners would never sample"
            )
        problems += self._baseline_problems()
        problems += self._mesh_problems()
        if problems:
            raise ValueError("impossible config: " + "; ".join(problems))

    def _baseline_problems(self) -> list[str]:
        """Impossible combinations of the baseline switches."""
        actors, learner, problems = self.actors, self.learner, []
        if not 0.0 <= actors.task_fraction < 1.0:
            problems.append(f"actors.task_fraction={actors.task_fraction} must be in [0, 1)")
        elif (
            actors.task_fraction
            and learner.train_imitation
            and not (0 < self.num_task_envs < actors.num_envs)
        ):
            problems.append(
                f"actors.task_fraction={actors.task_fraction} of actors.num_envs="
                f"{actors.num_envs} gives {self.num_task_envs} task-actor envs; need between "
                "1 and num_envs - 1"
            )
        if not 0.0 <= actors.gripper_guided_fraction <= 1.0:
            problems.append(
                f"actors.gripper_guided_fraction={actors.gripper_guided_fraction} must be in [0, 1]"
            )
        elif (  # without the imitation learner there is nothing to guide (task baselines)
            actors.gripper_guided_fraction
            and learner.train_imitation
            and not round(actors.gripper_guided_fraction * (actors.num_envs - self.num_task_envs))
        ):
            problems.append(
                f"actors.gripper_guided_fraction={actors.gripper_guided_fraction} of the "
                f"{actors.num_envs - self.num_task_envs} imitation-actor envs guides none"
            )
        if actors.task_episode_steps < 1:
            problems.append("actors.task_episode_steps must be >= 1")
        if actors.task_reset not in ("layout", "curriculum", "demo"):
            problems.append(
                f"actors.task_reset={actors.task_reset!r}: 'layout', 'curriculum' or 'demo'"
            )
        if self.num_task_envs and not learner.train_task:
            problems.append(
                "task actors (actors.task_fraction > 0 or learner.train_imitation=false) need "
                "learner.train_task=true"
            )
        if not (learner.train_imitation or learner.train_task):
            problems.append("learner.train_imitation and learner.train_task are both false")
        if actors.task_reset != "layout" and not self.num_task_envs:
            problems.append(
                f"actors.task_reset={actors.task_reset!r} needs task actors "
                "(actors.task_fraction > 0 or learner.train_imitation=false)"
            )
        if not 0.0 <= learner.demo_fraction < 1.0:
            problems.append(f"learner.demo_fraction={learner.demo_fraction} must be in [0, 1)")
        elif learner.demo_fraction and not 0 < self.demo_batch_size < learner.batch_size:
            problems.append(
                f"learner.demo_fraction={learner.demo_fraction} of learner.batch_size="
                f"{learner.batch_size} gives {self.demo_batch_size} demo transitions per batch; "
                "need between 1 and batch_size - 1"
            )
        if not 0.0 <= learner.success_fraction < 1.0:
            problems.append(
                f"learner.success_fraction={learner.success_fraction} must be in [0, 1)"
            )
        if learner.demo_fraction and not learner.train_task:
            problems.append("learner.demo_fraction > 0 (D4PGfD) needs learner.train_task=true")
        for name, c in (("imitation", learner.imitation), ("task", learner.task)):
            for field in ("bc_dim_scales", "bc_held_dim_scales", "bc_pause_dim_scales"):
                scales = getattr(c, field)
                if scales and len(scales) != ACTION_SIZE:
                    problems.append(
                        f"learner.{name}.{field}={scales}: give one factor per "
                        f"action dimension ({ACTION_SIZE}; the last is the gripper)"
                    )
            if c.regresses_by_pause and not learner.train_imitation:
                problems.append(
                    f"learner.{name}.bc_pause_dim_scales reads the pauses of the demos the "
                    "imitation actors follow: it needs learner.train_imitation=true (or "
                    f"no factors: --learner.{name}.bc-pause-dim-scales with none)"
                )
        problems += self._distillation_problems()
        return problems

    def _distillation_problems(self) -> list[str]:
        """``bc_target="imitation"`` without a teacher, or with task actors whose states
        have no demo step to ask the teacher about."""
        learner, problems = self.learner, []
        if learner.imitation.bc_weight and learner.imitation.bc_target == "imitation":
            problems.append(
                "learner.imitation.bc_target='imitation': a learner cannot distil itself"
            )
        task = learner.task
        if not (learner.train_task and task.bc_weight and task.bc_target == "imitation"):
            return problems
        if not learner.train_imitation:
            problems.append(
                "learner.task.bc_target='imitation' needs the imitation learner "
                "(learner.train_imitation=true)"
            )
        elif self.num_task_envs and self.actors.task_reset != "demo":
            problems.append(
                "learner.task.bc_target='imitation' with task actors needs "
                f"actors.task_reset='demo' (not {self.actors.task_reset!r}): only then does a "
                "task actor's step have a demo step for the imitation learner's goal"
            )
        return problems

    def _mesh_problems(self) -> list[str]:
        """A negative device count, or one the envs or the batch do not split across."""
        if self.mesh.devices < 0:
            return [f"mesh.devices={self.mesh.devices} must be >= 0 (0: all visible devices)"]
        return self.split_problems(self.mesh.devices or 1)

    def split_problems(self, devices: int) -> list[str]:
        """``actors.num_envs`` or ``learner.batch_size`` not splitting evenly across
        ``devices`` devices (each named)."""
        return [
            f"{field}={value} does not split evenly across mesh.devices={devices}"
            for field, value in (
                ("actors.num_envs", self.actors.num_envs),
                ("learner.batch_size", self.learner.batch_size),
            )
            if value % devices
        ]

    @property
    def num_task_envs(self) -> int:
        """Envs running the task actor (the last ones): all without an imitation learner."""
        if not self.learner.train_imitation:
            return self.actors.num_envs
        return round(self.actors.task_fraction * self.actors.num_envs)

    @property
    def success_batch_size(self) -> int:
        """Replay transitions per batch drawn from episodes going on to the task reward
        (for the task learner: 0 without one)."""
        if not self.learner.train_task:
            return 0
        return round(
            self.learner.success_fraction * (self.learner.batch_size - self.demo_batch_size)
        )

    @property
    def demo_batch_size(self) -> int:
        """Transitions per learner batch drawn from the demos (D4PGfD; 0 when off)."""
        if not self.learner.demo_fraction:
            return 0
        fraction = self.learner.demo_fraction
        return split_batch_size(self.learner.batch_size, (1.0 - fraction, fraction))[1]

    @property
    def obs_keys(self) -> tuple[str, ...]:
        """Observation parts the learners read: pixels + proprio (+ features for critics
        that read them, an auxiliary loss that predicts them or a regression gated on a
        block being held), or proprio + features."""
        network = self.learner.network
        if network.reads_pixels:
            configs = self.learner_configs().values()
            aux = any(c.aux_features_weight for c in configs)
            held = any(c.regresses_by_held for c in configs)
            reads_features = network.critic_inputs == "features" or aux or held
            return ("pixels", "proprio") + (("features",) * reads_features)
        return ("proprio", "features")

    def learner_configs(self) -> dict[str, D4PGConfig]:
        """The D4PG configs of the learners to train, with the shared network."""
        configs = {"imitation": self.learner.imitation} if self.learner.train_imitation else {}
        if self.learner.train_task:
            configs["task"] = self.learner.task
        return {
            name: dataclasses.replace(c, network=self.learner.network)
            for name, c in configs.items()
        }
