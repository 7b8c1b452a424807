"""``D4PGConfig``: one D4PG learner's hyper-parameters and network."""

import dataclasses
from typing import Literal

from mjx_metamimic.networks import NetworkConfig


@dataclasses.dataclass(frozen=True)
class D4PGConfig:
    """Hyper-parameters of one D4PG learner."""

    stream: str = "task"
    """Reward stream of the replay this learner maximises."""
    goal_conditioned: bool = False
    """Whether the actor and critic also see a goal observation."""
    network: NetworkConfig = NetworkConfig()
    """Actor and critic architecture (same form; separate parameters unless
    ``network.shared_torso``)."""
    critic: Literal["categorical", "scalar"] = "categorical"
    """Critic form: a categorical distribution over ``num_atoms`` atoms in [v_min, v_max]
    (D4PG, cross-entropy loss), or a scalar value (squared TD error)."""
    num_critics: int = 1
    """Independent critics; with 2 or more each bootstraps from the target critic whose
    value is smallest (clipped double Q); the policy follows the first."""
    target_noise_std: float = 0.0
    """Std of the Gaussian noise added to the target policy's action (0: none)."""
    target_noise_clip: float = 0.5
    """Bound on that noise, per action dimension."""
    num_atoms: int = 51
    """Atoms of the critic's categorical support."""
    v_min: float = -150.0
    """Lowest value of the critic's support."""
    v_max: float = 150.0
    """Highest value of the critic's support."""
    actor_lr: float = 1e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 1e-4
    """Adam learning rate of the critic."""
    max_grad_norm: float = 40.0
    """Global gradient-norm clip applied before Adam (each network separately)."""
    dqda_clip: float | None = 1.0
    """Clip on the L2 norm of dQ/da in the policy gradient; None disables it."""
    target_update: Literal["polyak", "periodic"] = "polyak"
    """How target networks follow the online ones: every update by Polyak averaging, or a
    full copy every ``target_period`` updates."""
    target_tau: float = 0.005
    """Polyak step size (target <- (1 - tau) target + tau online)."""
    target_period: int = 100
    """Updates between target copies for ``periodic``."""
    n_step: int = 0
    """Steps of this learner's n-step return (0: the replay's ``n_step``). A sparse reward
    far from most states (the task's stack) travels back n steps per update instead of one."""
    episode_ends: Literal["terminal", "truncation"] = "terminal"
    """What the end of a stored episode means to this learner: "terminal" bootstraps 0 past
    it; "truncation" leaves out of its losses the samples whose n-step window reaches an
    episode's end (the next state is never stored, so there is nothing to bootstrap from).
    For the task stream every end (drifting from the demo, the demo's end, a time limit) is
    a truncation: bootstrapping 0 there makes a held stack worth its remaining steps, not
    ~1 / (1 - gamma)."""
    bc_weight: float = 0.0
    """Weight of a squared-error regression of the actor onto the replay's actions (or
    the imitation learner's, ``bc_target``; per action dimension, as the DPG loss): the
    task actor takes up what the imitation actors did - their grasps and stacks - which
    following dQ/da alone reaches slowly. The replay's actions are the actors' own, never
    the demos'. 0 turns it off."""
    bc_weight_final: float | None = None
    """Weight the regression decays to, linearly over ``bc_decay_updates`` of this
    learner's updates (None: ``bc_weight`` throughout): a strong regression early brings
    the task actor to the blocks and their grasp, a weak one late leaves more of the
    finish to dQ/da (docs/results.md measures both)."""
    bc_decay_updates: int = 0
    """Updates over which the regression's weight goes from ``bc_weight`` to
    ``bc_weight_final`` (needed iff ``bc_weight_final`` is set)."""
    bc_dim_scales: tuple[float, ...] = ()
    """Per action dimension, a factor on the regression's weight (empty: 1 for every
    dimension). A factor of 0 leaves that output to dQ/da alone; on the gripper command
    (action 6) that costs the grasp, so ``bc_held_dim_scales`` does it only once a block
    is held (docs/results.md measures both)."""
    bc_held_dim_scales: tuple[float, ...] = ()
    """Per action dimension, the factor that replaces ``bc_dim_scales`` on samples where
    the gripper holds a block (empty: ``bc_dim_scales`` on every sample). ``1 1 1 1 1 1
    0`` clones the approach and the grasp, gripper included, and leaves the gripper to
    dQ/da once a block is held: the actors' release comes at their demos' moments, which
    the task actor cannot see, so cloning it there keeps the block held."""
    bc_pause_dim_scales: tuple[float, ...] = ()
    """Per action dimension, a factor that multiplies the regression's other factors on
    samples where the demo an imitation actor followed held its arm still at that step
    (its controller setpoint unchanged: the demonstrator's pauses, its grasp and its
    release; empty: no such factor). A task actor cannot see a pause's timer: cloning the
    actors there teaches it to stand still in states the demos leave after a few steps.
    ``0 0 0 0 0 0 1`` drops the arm's regression there and keeps the gripper's."""
    bc_filter: Literal["advantage", "none", "success", "success_advantage"] = "advantage"
    """Which samples the regression uses: "advantage" those whose target action the critic
    values above the actor's own (CRR's binary filter, Wang et al. 2020), "none" every sample
    (TD3+BC, Fujimoto & Gu 2021), "success" those whose episode reaches a positive reward
    of this learner's stream within ``success_horizon`` steps (a hindsight label read from
    the replay: filtered behaviour cloning of the actors' own successful episodes),
    "success_advantage" those that pass both filters (among the successes, the actions the
    critic prefers to the actor's: where a still arm and a moving one both led to a stack,
    the one it values higher)."""
    success_horizon: int = 200
    """Steps ahead the "success" filter looks for the reward (200: a whole demo)."""
    bc_target: Literal["replay", "imitation"] = "replay"
    """What the regression pulls the actor toward: "replay" the stored actions; "imitation"
    the imitation learner's current greedy action on the sample's observation and demo goal
    (policy distillation; with task actors started on the demos' layouts,
    ``actors.task_reset="demo"``, the teacher labels the states the task policy itself
    visits, as DAgger does). Neither is ever a demo's action."""

    random_shift: int = 0
    """Largest random shift, in pixels, of the frames of every sampled batch (DrQ's image
    augmentation): padded by their border and cropped back at a random offset, a sample's
    observation and goal frames together, the bootstrap step's independently. 0: none."""

    aux_features_weight: float = 0.0
    """Weight of an auxiliary loss on the shared encoder (``network.shared_torso``, pixels):
    a linear head predicts the observation's and goal's proprio and privileged features
    (block and grip positions), standardised, from the embedding, so the conv torso must
    encode where the blocks are (as UNREAL's auxiliary tasks, Jaderberg et al. 2017). The
    features are targets only: the policy still acts from pixels and proprio. 0: off."""

    @property
    def regresses_by_success(self) -> bool:
        """Whether this learner's regression needs each sample's hindsight success label."""
        return bool(self.bc_weight) and self.bc_filter in ("success", "success_advantage")

    @property
    def regresses_by_held(self) -> bool:
        """Whether this learner's regression needs each sample's held-block flag."""
        return bool(self.bc_weight and self.bc_held_dim_scales)

    @property
    def regresses_by_pause(self) -> bool:
        """Whether this learner's regression needs each sample's demo-pause flag."""
        return bool(self.bc_weight and self.bc_pause_dim_scales)

    def __post_init__(self):
        if self.aux_features_weight < 0:
            raise ValueError(f"aux_features_weight must be >= 0, got {self.aux_features_weight}")
        if self.aux_features_weight and not self.network.reads_pixels:
            raise ValueError("aux_features_weight needs a network that reads pixels")
        if self.random_shift < 0:
            raise ValueError(f"random_shift must be >= 0, got {self.random_shift}")
        if self.random_shift and not self.network.reads_pixels:
            raise ValueError("random_shift needs a network that reads pixels (network.inputs)")
        if self.critic not in ("categorical", "scalar"):
            raise ValueError(f"critic must be 'categorical' or 'scalar', got {self.critic!r}")
        if self.num_critics < 1:
            raise ValueError(f"num_critics must be >= 1, got {self.num_critics}")
        if self.target_noise_std < 0 or self.target_noise_clip < 0:
            raise ValueError(
                "target_noise_std and target_noise_clip must be >= 0, got "
                f"{self.target_noise_std} and {self.target_noise_clip}"
            )
        if self.n_step < 0 or self.bc_weight < 0:
            raise ValueError(
                f"n_step and bc_weight must be >= 0, got {self.n_step} and {self.bc_weight}"
            )
        if self.bc_weight_final is not None and (
            self.bc_weight_final < 0 or self.bc_decay_updates < 1
        ):
            raise ValueError(
                "bc_weight_final needs bc_weight_final >= 0 and bc_decay_updates >= 1, got "
                f"{self.bc_weight_final} and {self.bc_decay_updates}"
            )
        if self.bc_decay_updates and self.bc_weight_final is None:
            raise ValueError("bc_decay_updates needs bc_weight_final (the weight it decays to)")
        for name in ("bc_dim_scales", "bc_held_dim_scales", "bc_pause_dim_scales"):
            if any(not scale >= 0 for scale in getattr(self, name)):
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.bc_filter not in ("advantage", "none", "success", "success_advantage"):
            raise ValueError(
                "bc_filter must be 'advantage', 'none', 'success' or 'success_advantage', "
                f"got {self.bc_filter!r}"
            )
        if self.bc_target not in ("replay", "imitation"):
            raise ValueError(f"bc_target must be 'replay' or 'imitation', got {self.bc_target!r}")
        if self.success_horizon < 1:
            raise ValueError(f"success_horizon must be >= 1, got {self.success_horizon}")
        if self.episode_ends not in ("terminal", "truncation"):
            raise ValueError(
                f"episode_ends must be 'terminal' or 'truncation', got {self.episode_ends!r}"
            )
        if self.critic == "categorical" and not (self.num_atoms >= 2 and self.v_max > self.v_min):
            raise ValueError(
                "a categorical critic needs num_atoms >= 2 and v_max > v_min, got "
                f"{self.num_atoms}, [{self.v_min}, {self.v_max}]"
            )
