"""The training run's config: frozen dataclasses, loaded by name from train/*.toml."""

import dataclasses
from pathlib import Path

from mjx_metamimic.agents import D4PGConfig
from mjx_metamimic.envs.stack import StackEnvConfig
from mjx_metamimic.imitation import ImitationRewardConfig
from mjx_metamimic.networks import NetworkConfig
from mjx_metamimic.replay import ReplayConfig


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


@dataclasses.dataclass(frozen=True)
class ActorConfig:
    """The imitation actors: E envs, each following one training demo at a time."""

    num_envs: int = 32
    """Envs stepped in parallel (E)."""
    steps_per_chunk: int = 10
    """Env steps per env in one jitted training chunk (K)."""
    noise_std: float = 0.1
    """Std of the Gaussian exploration noise added to the policy's action (then clipped)."""
    lookahead: int = 1
    """The goal at step t is the demo's observation at t + lookahead."""


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
    """The goal-conditioned imitation learner (imitation reward). Its ``network`` is
    replaced by ``LearnerConfig.network``."""
    task: D4PGConfig = D4PGConfig(stream="task", goal_conditioned=False, v_min=0.0, v_max=100.0)
    """The task learner (sparse task reward, no goal)."""
    train_task: bool = True
    """Also train the task policy from the same replay."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Run length, logging, evaluation and checkpoints."""

    seed: int = 0
    """Seed of everything random in the run."""
    max_minutes: float = 15.0
    """Wall-clock training budget (compile time excluded)."""
    max_env_steps: int = 10_000_000
    """Stop after this many env steps."""
    log_every: int = 20
    """Chunks between progress lines and metric rows."""
    eval_every: int = 200
    """Chunks between evaluations on validation demos (0: only at the end)."""
    checkpoint_every: int = 200
    """Chunks between checkpoints (0: only at the end)."""
    out_dir: Path = Path("runs")
    """Parent directory of run directories."""
    video_demos: int = 1
    """Validation demos in the final video of the imitation policy beside them (0: no video)."""
    video_size: int = 128
    """Height and width (pixels, even) of the agent's and the demo's halves of that video."""


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
        if self.learner.network.inputs == "pixels" and not self.image_size:
            problems.append("learner.network.inputs='pixels' needs image_size > 0")
        if self.actors.num_envs < 1 or self.actors.steps_per_chunk < 1:
            problems.append("actors.num_envs and actors.steps_per_chunk must be >= 1")
        if self.learner.batch_size < 1 or self.learner.updates_per_chunk < 0:
            problems.append("learner.batch_size must be >= 1, updates_per_chunk >= 0")
        if problems:
            raise ValueError("impossible config: " + "; ".join(problems))

    @property
    def obs_keys(self) -> tuple[str, ...]:
        """Observation parts the networks see: pixels + proprio, or proprio + features."""
        if self.learner.network.inputs == "pixels":
            return ("pixels", "proprio")
        return ("proprio", "features")

    def learner_configs(self) -> dict[str, D4PGConfig]:
        """The D4PG configs of the learners to train, with the shared network."""
        configs = {"imitation": self.learner.imitation}
        if self.learner.train_task:
            configs["task"] = self.learner.task
        return {
            name: dataclasses.replace(c, network=self.learner.network)
            for name, c in configs.items()
        }
