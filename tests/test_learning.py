"""End-to-end learning on real demonstrations (features, fixed seeds).

The demonstrator records a small dataset; an oracle that steers the arm's set-points to
the goal's reproduces held-out demos (so goals, rewards and resets line up); then a short
MetaMimic run must track held-out demos clearly better than the zero-action baseline
measured in the same evaluation.
"""

import dataclasses

import jax
import jax.numpy as jnp
import pytest

import mjx_metamimic  # noqa: F401  (default XLA flags before jax use)
from mjx_metamimic import configs, demos, evaluate
from mjx_metamimic.demos.cli import DemosArgs, build_recorder, write_dataset
from mjx_metamimic.envs.stack import PROPRIO_PARTS
from mjx_metamimic.replay import ReplayConfig
from mjx_metamimic.train import build
from mjx_metamimic.train_config import ActorConfig, DemoSpec, TrainConfig

NUM_DEMOS = 24  # 21 train, 3 validation
NUM_CHUNKS = 250  # 16 envs x 10 steps: 40k env steps, 6k updates


def learning_config(demo_path) -> TrainConfig:
    """The features config, smaller: 16 envs, small replay."""
    base = configs.load(TrainConfig, "features")
    return dataclasses.replace(
        base,
        demos=DemoSpec(path=demo_path, num=NUM_DEMOS, image_size=8),
        actors=ActorConfig(num_envs=16, steps_per_chunk=10, noise_std=base.actors.noise_std),
        learner=dataclasses.replace(base.learner, train_task=False),
        replay=ReplayConfig(capacity=50_000, n_step=5, gamma=0.99, min_size=1_000),
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path = tmp_path_factory.mktemp("demos") / "stack"
    args = DemosArgs(out=path, num=NUM_DEMOS, seed=0, image_size=8, batch_size=NUM_DEMOS)
    write_dataset(args, build_recorder(args))
    config = learning_config(path)
    algo = build(config)
    banks = {s: demos.DemoBank.from_demos(demos.load(path, s)) for s in ("train", "validation")}
    return config, algo, banks, evaluate.Evaluator(algo, num_task_episodes=2)


def oracle_action(algo, obs, goal):
    """Steers each arm set-point to the goal's in one step; closes the gripper when the
    demo's fingers are closing or closed."""
    env = algo.env
    setpoint, gap = PROPRIO_PARTS["setpoint"], PROPRIO_PARTS["finger_gap"]
    step = env.config.max_joint_velocity * env.config.control_dt
    arm = jnp.clip((goal["proprio"][setpoint] - obs["proprio"][setpoint]) / step, -1.0, 1.0)
    closing = goal["proprio"][gap][0] < 2 * env.config.gripper_open - 0.005
    return jnp.concatenate([arm, jnp.where(closing, -1.0, 1.0)[None]])


def test_oracle_reproduces_held_out_demos(setup):
    _, algo, banks, _ = setup
    bank = banks["validation"]

    def run(i):
        state = algo.env.reset_to(jax.random.PRNGKey(0), demos.init_states(bank, i))

        def step(state, t):
            obs = state.obs
            state = algo.env.step(state, oracle_action(algo, obs, algo.goal(bank, i, t)))
            target = demos.goal(bank, i, t + 1)["proprio"][PROPRIO_PARTS["joint_pos"]]
            error = jnp.linalg.norm(state.obs["proprio"][PROPRIO_PARTS["joint_pos"]] - target)
            return state, error

        _, errors = jax.lax.scan(step, state, jnp.arange(bank.max_steps - 1))
        active = jnp.arange(bank.max_steps - 1) < bank.lengths[i] - 1
        return jnp.max(jnp.where(active, errors, 0.0))

    worst = jax.jit(jax.vmap(run))(jnp.arange(bank.num_demos))
    assert float(jnp.max(worst)) < 0.05, f"oracle joint errors {worst} (rad)"


def test_short_run_tracks_held_out_demos_better_than_zero_actions(setup):
    _, algo, banks, evaluator = setup
    state = jax.jit(algo.init)(jax.random.PRNGKey(0), banks["train"])
    chunk = jax.jit(algo.train_chunk, donate_argnums=0)
    for _ in range(NUM_CHUNKS):
        state, metrics = chunk(state, banks["train"])
    assert int(metrics["train/updates"]) > 0

    results = evaluator(
        state.learners, banks["validation"], jax.random.PRNGKey(1), ("agent", "zero")
    )
    agent_error, zero_error = results["eval/agent/joint_error"], results["eval/zero/joint_error"]
    assert agent_error < 0.5 * zero_error, (agent_error, zero_error)
    assert results["eval/agent/reward"] > results["eval/zero/reward"] + 0.05, results
