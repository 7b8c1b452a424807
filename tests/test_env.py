"""The stacking env: API, determinism, physics sanity, task reward, errors, tracing."""

import chex
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from mjx_metamimic import envs
from mjx_metamimic.envs import warp_physics
from mjx_metamimic.envs.batching import batched
from mjx_metamimic.envs.c_physics import KINEMATICS_FIELDS, STATE_FIELDS
from mjx_metamimic.envs.stack import FEATURES_SIZE, PROPRIO_SIZE
from mjx_metamimic.envs.wrappers import AutoReset

BATCH = 4


@pytest.fixture(
    scope="module",
    params=[
        "jax",
        "c",
        pytest.param(
            "warp",
            marks=pytest.mark.skipif(
                not warp_physics.warp_installed(), reason="warp-lang is not installed"
            ),
        ),
    ],
)
def env(request):
    """The env on each physics engine: every test of this module runs on each (the Warp
    engine's contact buffer sized for the largest batch stepped here)."""
    return envs.make("stack", impl=request.param, warp_max_envs=8)


@pytest.fixture(scope="module")
def fns(env):
    """Jitted single-env and batched functions, compiled once for the module (``step``
    counts its traces in ``step_traces``)."""
    step_traces = []

    def counted_step(state, action):
        step_traces.append(1)
        return env.step(state, action)

    return {
        "reset": jax.jit(env.reset),
        "reset_to": jax.jit(env.reset_to),
        "step": jax.jit(counted_step),
        "step_traces": step_traces,
        "reset_batch": jax.jit(jax.vmap(env.reset)),
        "step_batch": jax.jit(jax.vmap(env.step)),
    }


def rollout(step, state, actions):
    """Steps ``state`` through ``actions`` (T, ...) on the host; returns the states."""
    states = []
    for action in actions:
        state = step(state, action)
        states.append(state)
    return states


def _stack_sim_state(env, fns, centre, fingers=None, key=0):
    """A state with block_a resting centred on block_b, block_a's centre at ``centre``."""
    sim = env.sim_state(fns["reset"](jax.random.PRNGKey(key)))
    ids, half = env.ids, env.ids.block_half_size
    top = jnp.concatenate([jnp.asarray(centre), jnp.array([1.0, 0, 0, 0])])
    qpos = sim.qpos.at[ids.block_qpos[0]].set(top)
    qpos = qpos.at[ids.block_qpos[1]].set(top.at[2].add(-2 * half))
    if fingers is not None:
        qpos = qpos.at[ids.finger_qpos].set(fingers)
    return sim.replace(qpos=qpos)


def test_reset_and_step_batch_shapes_dtypes(env, fns):
    keys = jax.random.split(jax.random.PRNGKey(0), BATCH)
    states = fns["reset_batch"](keys)
    actions = jax.random.uniform(jax.random.PRNGKey(1), (BATCH, env.action_size), minval=-1)
    for _ in range(5):
        states = fns["step_batch"](states, actions)
    assert states.obs["proprio"].shape == (BATCH, PROPRIO_SIZE)
    assert states.obs["features"].shape == (BATCH, FEATURES_SIZE)
    assert states.obs["proprio"].dtype == jnp.float32
    assert states.reward.shape == (BATCH,) and states.done.shape == (BATCH,)
    for leaf in jax.tree.leaves((states.obs, states.reward, states.metrics)):
        assert np.all(np.isfinite(np.asarray(leaf)))
    assert env.observation_size == {"proprio": (PROPRIO_SIZE,), "features": (FEATURES_SIZE,)}
    assert env.action_size == 7


def test_determinism_and_layout_diversity(env, fns):
    keys = jax.random.split(jax.random.PRNGKey(3), BATCH)
    a = fns["reset_batch"](keys)
    b = fns["reset_batch"](keys)
    chex.assert_trees_all_equal(a.obs, b.obs)
    actions = jnp.full((BATCH, 7), 0.3, jnp.float32)  # not weak-typed: no second compile
    chex.assert_trees_all_equal(
        fns["step_batch"](a, actions).obs, fns["step_batch"](b, actions).obs
    )
    blocks = np.asarray(a.pipeline_state.qpos[:, env.ids.block_qpos[:, :3]])  # (B, 2, 3)
    # Different keys give different layouts and colours.
    assert len({tuple(np.round(x.ravel(), 4)) for x in blocks}) == BATCH
    assert len({tuple(np.round(c.ravel(), 4)) for c in np.asarray(a.info["block_rgba"])}) == BATCH


def test_layouts_are_reachable_and_separate(env):
    keys = jax.random.split(jax.random.PRNGKey(7), 256)
    layouts = np.asarray(jax.jit(jax.vmap(env.sample_layout))(keys))  # (256, 2, 7)
    xy = layouts[:, :, :2]
    radius = np.linalg.norm(xy, axis=-1)
    cfg = env.config
    assert radius.min() >= cfg.block_radius[0] - 1e-6 and radius.max() <= cfg.block_radius[1] + 1e-6
    assert np.linalg.norm(xy[:, 0] - xy[:, 1], axis=-1).min() >= cfg.block_min_separation - 1e-6
    np.testing.assert_allclose(np.linalg.norm(layouts[:, :, 3:], axis=-1), 1.0, atol=1e-5)


def test_stacked_state_is_rewarded_and_stays_stacked(env, fns):
    half = env.ids.block_half_size
    sim = _stack_sim_state(env, fns, centre=(0.33, 0.0, 3 * half))
    state = fns["reset_to"](jax.random.PRNGKey(0), sim)
    assert float(state.metrics["env/stacked"]) == 1.0
    hold_still = jnp.array([0, 0, 0, 0, 0, 0, 1.0])
    states = rollout(fns["step"], state, [hold_still] * int(round(2.0 / env.dt)))  # 2 s
    rewards = np.array([float(s.reward) for s in states])
    assert rewards[5:].min() == 1.0, rewards  # allow 0.25 s of settling contacts
    top, bottom = np.asarray(states[-1].pipeline_state.qpos[env.ids.block_qpos[:, :3]])
    assert np.linalg.norm(top[:2] - bottom[:2]) < 0.005


def test_held_block_is_not_rewarded(env, fns):
    # block_a sits in the hand, exactly one edge above block_b.
    grip = fns["reset"](jax.random.PRNGKey(0)).pipeline_state.site_xpos[env.ids.grip_site]
    on_faces = env.ids.block_half_size - 0.002  # finger joint value touching the block
    held = fns["reset_to"](
        jax.random.PRNGKey(0), _stack_sim_state(env, fns, centre=grip, fingers=on_faces)
    )
    assert float(held.metrics["env/grasped"]) == 1.0
    assert float(held.metrics["env/stacked"]) == 0.0
    # The same poses with the gripper open count as stacked: "held" is what differs.
    opened = fns["reset_to"](
        jax.random.PRNGKey(0),
        _stack_sim_state(env, fns, centre=grip, fingers=env.config.gripper_open),
    )
    assert float(opened.metrics["env/stacked"]) == 1.0
    # the observation alone tells the same (what a learner reads from its replay)
    assert bool(env.holds_block(held.obs)) and not bool(env.holds_block(opened.obs))
    close = jnp.array([0, 0, 0, 0, 0, 0, -1.0])
    states = rollout(fns["step"], held, [close] * 4)
    assert all(float(s.reward) == 0.0 for s in states)


def test_gripper_command_for_gap_recovers_the_command_that_made_the_gap(env, fns):
    state = fns["reset"](jax.random.PRNGKey(0))
    for command in (0.5, 0.7, 0.9):  # the demos' open commands are 0.6 ... 1
        action = jnp.zeros(7).at[6].set(command)
        settled = rollout(fns["step"], state, [action] * 10)[-1]
        gap = env.finger_gap(settled.pipeline_state)
        np.testing.assert_allclose(env.gripper_command_for_gap(gap), command, atol=0.05)
    # Gaps up to a block's width plus 1 cm (fingers on a block, or closing): full squeeze.
    narrow = 2 * env.ids.block_half_size + jnp.array([-0.03, -0.002, 0.0, 0.009])
    np.testing.assert_array_equal(env.gripper_command_for_gap(narrow), -1.0)


def test_dropped_blocks_come_to_rest(env, fns):
    state = fns["reset"](jax.random.PRNGKey(5))
    sim = env.sim_state(state)
    tilt = jnp.array([0.96, 0.2, 0.1, 0.17])
    tilt = tilt / jnp.linalg.norm(tilt)
    qpos = sim.qpos
    for i in range(2):
        pose = sim.qpos[env.ids.block_qpos[i]].at[2].set(0.15 + 0.05 * i).at[3:].set(tilt)
        qpos = qpos.at[env.ids.block_qpos[i]].set(pose)
    state = fns["reset_to"](jax.random.PRNGKey(5), sim.replace(qpos=qpos))
    states = rollout(fns["step"], state, [jnp.zeros(7)] * int(round(2.0 / env.dt)))
    final = states[-1].pipeline_state
    vel = np.asarray(final.qvel[env.ids.block_qvel])  # (2, 6)
    assert np.linalg.norm(vel[:, :3], axis=-1).max() < env.config.rest_linear_velocity
    assert np.linalg.norm(vel[:, 3:], axis=-1).max() < env.config.rest_angular_velocity
    heights = np.asarray(final.qpos[env.ids.block_qpos[:, 2]])
    np.testing.assert_allclose(heights, env.ids.block_half_size, atol=0.004)


def test_reset_to_round_trip_gives_identical_next_steps(env, fns):
    state = fns["reset"](jax.random.PRNGKey(11))
    actions = jax.random.uniform(jax.random.PRNGKey(12), (6, 7), minval=-1)
    mid = rollout(fns["step"], state, actions[:3])[-1]
    # Restore in a second, independently built env (then step both with the same
    # compiled step: it is a pure function of the state).
    other = envs.make("stack", impl=env.config.impl, warp_max_envs=env.config.warp_max_envs)
    restored = jax.jit(other.reset_to)(jax.random.PRNGKey(99), env.sim_state(mid))
    chex.assert_trees_all_equal(restored.obs, mid.obs)
    a = rollout(fns["step"], mid, actions[3:])
    b = rollout(fns["step"], restored, actions[3:])
    for x, y in zip(a, b, strict=True):
        chex.assert_trees_all_equal(x.obs, y.obs)
        chex.assert_trees_all_equal(x.pipeline_state.qpos, y.pipeline_state.qpos)


def test_nan_physics_ends_episode_without_nan_outputs(env, fns):
    state = fns["reset"](jax.random.PRNGKey(2))
    bad = state.replace(
        pipeline_state=state.pipeline_state.replace(
            qvel=state.pipeline_state.qvel.at[0].set(jnp.nan)
        )
    )
    out = fns["step"](bad, jnp.zeros(7))
    assert float(out.done) == 1.0 and float(out.metrics["env/nan"]) == 1.0
    assert float(out.reward) == 0.0
    assert np.all(np.isfinite(np.asarray(out.obs["proprio"])))


def test_auto_reset_draws_new_layouts(env):
    if env.config.impl != "c":
        pytest.skip("the wrapper is engine-agnostic: checked on the faster-compiling c engine")
    wrapped = AutoReset(env, episode_length=3)
    state = jax.jit(wrapped.reset)(jax.random.PRNGKey(4))
    step = jax.jit(wrapped.step)
    layouts, dones = [np.asarray(state.obs["features"][3:9])], []
    for _ in range(6):
        state = step(state, jnp.zeros(7))
        dones.append(float(state.done))
        if dones[-1]:
            layouts.append(np.asarray(state.obs["features"][3:9]))
    assert dones == [0, 0, 1, 0, 0, 1]
    assert len(layouts) == 3
    assert not np.allclose(layouts[0], layouts[1]) and not np.allclose(layouts[1], layouts[2])


def test_batched_chunks_match_plain_vmap(env, fns):
    if env.config.impl != "c":
        pytest.skip("the batching helper is engine-agnostic: checked on the c engine")
    keys = jax.random.split(jax.random.PRNGKey(8), 8)
    states = fns["reset_batch"](keys)
    actions = jax.random.uniform(jax.random.PRNGKey(9), (8, 7), minval=-1)
    chunked = jax.jit(batched(env.step, chunk_size=3))(states, actions)  # chunks of 2 (8 % 3 != 0)
    plain = fns["step_batch"](states, actions)
    chex.assert_trees_all_close(chunked.obs, plain.obs, atol=1e-5)


def test_warp_steps_a_batch_larger_than_its_buffer_in_chunks(env, fns):
    if env.config.impl != "warp":
        pytest.skip("only the warp engine's contact buffer is sized for a number of envs")
    assert env.step_chunk_size == env.config.warp_max_envs == 8
    keys = jax.random.split(jax.random.PRNGKey(10), 16)
    states = fns["reset_batch"](keys)
    actions = jax.random.uniform(jax.random.PRNGKey(11), (16, 7), minval=-1)
    chunked = jax.jit(batched(env.step, env.step_chunk_size))(states, actions)
    for half in (slice(0, 8), slice(8, 16)):
        part = fns["step_batch"](*jax.tree.map(lambda x, h=half: x[h], (states, actions)))
        chex.assert_trees_all_close(
            jax.tree.map(lambda x, h=half: x[h], chunked.obs), part.obs, atol=1e-5
        )


def test_stepping_does_not_retrace(env, fns):
    # Every test of this module steps single envs with fns["step"]: fresh, stepped,
    # restored and hand-made states all hit its one compilation.
    state = fns["reset"](jax.random.PRNGKey(0))
    for i in range(5):
        state = fns["step"](state, jnp.full((7,), 0.1 * i, jnp.float32))
    assert len(fns["step_traces"]) == 1


def test_wrong_action_shape_is_a_clear_error(env, fns):
    state = fns["reset"](jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"action must have shape \(7,\)"):
        env.step(state, jnp.zeros(6))
    with pytest.raises(ValueError, match="vmap"):
        env.step(state, jnp.zeros((2, 7)))


def test_bad_overrides_are_clear_errors():
    with pytest.raises(ValueError, match="unknown option.*'max_joint_speed'"):
        envs.make("stack", max_joint_speed=2.0)
    with pytest.raises(ValueError, match="control_dt"):
        envs.make("stack", control_dt=0.0123)
    with pytest.raises(ValueError, match="gripper_open"):
        envs.make("stack", gripper_open=0.2)
    with pytest.raises(ValueError, match="unknown env"):
        envs.make("pick")
    with pytest.raises(ValueError, match="impl='bullet' is not a physics engine"):
        envs.make("stack", impl="bullet")


def test_warp_engine_without_warp_lang_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(warp_physics, "warp_installed", lambda: False)
    with pytest.raises(ValueError, match="needs the warp-lang package"):
        envs.make("stack", impl="warp")


# Per engine: (field, rtol, atol) of a control step's new state against MuJoCo C's from the
# same state, and the atol of the kinematics of the new positions.
MUJOCO_C_TOLERANCES = {
    # MuJoCo C itself, rounded to float32: equal up to one float32 rounding (the batch
    # executor and a lone MjData differ in the last bit).
    "c": (tuple((n, 1e-6, 1e-9) for n in ("qpos", "qvel", "act", "qacc_warmstart")), 1e-6),
    # Warp's float32 kernels: velocities of blocks resting in contact differ most, ~1e-3 m/s
    # against ~1 m/s while moving.
    "warp": ((("qpos", 0.0, 2e-4), ("act", 0.0, 2e-4), ("qvel", 0.0, 1e-2)), 1e-5),
}


def test_engine_steps_as_mujoco_c(env, fns):
    """A control step of every env of a batch follows MuJoCo C's mj_step x n_substeps from
    the same float32 state (the controls as the step wrote them), and the returned
    kinematics, cameras included, are those of the returned positions."""
    if env.config.impl not in MUJOCO_C_TOLERANCES:
        pytest.skip("MJX's JAX engine has its own contact model: checked by the physics tests")
    state_tolerances, kinematics_atol = MUJOCO_C_TOLERANCES[env.config.impl]
    keys = jax.random.split(jax.random.PRNGKey(5), BATCH)
    states = fns["reset_batch"](keys)
    actions = jax.random.uniform(jax.random.PRNGKey(6), (3, BATCH, 7), minval=-1)
    model, data = env.mj_model, mujoco.MjData(env.mj_model)
    for action in actions:
        nxt = fns["step_batch"](states, action)
        for i in range(BATCH):
            for name in STATE_FIELDS:
                setattr(data, name, np.asarray(getattr(states.pipeline_state, name)[i]))
            got = {
                name: np.asarray(getattr(nxt.pipeline_state, name)[i])
                for name in (*STATE_FIELDS, "ctrl", *KINEMATICS_FIELDS)
            }
            data.ctrl = got["ctrl"]
            mujoco.mj_step(model, data, nstep=env.n_substeps)
            for name, rtol, atol in state_tolerances:
                expected = getattr(data, name).astype(np.float32)
                np.testing.assert_allclose(got[name], expected, rtol=rtol, atol=atol, err_msg=name)
            data.qpos = got["qpos"]
            mujoco.mj_kinematics(model, data)
            mujoco.mj_camlight(model, data)
            for name in KINEMATICS_FIELDS:
                expected = getattr(data, name).reshape(got[name].shape)
                np.testing.assert_allclose(got[name], expected, atol=kinematics_atol, err_msg=name)
        states = nxt
