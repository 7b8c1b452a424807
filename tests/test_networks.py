"""Networks: shapes per preset, per-sample normalisation, goal/pixel inputs, no retracing."""

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mjx_metamimic  # noqa: F401  (default XLA flags before jax use)
from mjx_metamimic.networks import (
    PRESETS,
    Actor,
    ConvNorm,
    Critic,
    NetworkConfig,
    conv2d_same,
    count_params,
    network_stats,
    num_conv_layers,
    preset_stats,
)
from mjx_metamimic.networks.config import Stage
from mjx_metamimic.networks.pool import max_pool_3x3_stride2
from mjx_metamimic.networks.torso import SpatialSoftmax

IMAGE, PROPRIO, ACTION, ATOMS = 16, 5, 3, 11


def make_obs(key, batch_shape=(2,), features=False):
    pixel_key, proprio_key, feature_key = jax.random.split(key, 3)
    obs = {
        "pixels": jax.random.randint(
            pixel_key, (*batch_shape, IMAGE, IMAGE, 3), 0, 256, jnp.int32
        ).astype(jnp.uint8),
        "proprio": jax.random.normal(proprio_key, (*batch_shape, PROPRIO)),
    }
    if features:
        obs["features"] = jax.random.normal(feature_key, (*batch_shape, 4))
    return obs


def conv_kernels(params) -> int:
    return sum(1 for leaf in jax.tree.leaves(params) if leaf.ndim == 4)


@pytest.fixture(scope="module")
def tiny_actor():
    config = NetworkConfig(torso="tiny", torso_hidden=(32,), head_hidden=(32,))
    actor = Actor(config, ACTION)
    obs, goal = make_obs(jax.random.key(1)), make_obs(jax.random.key(2))
    params = jax.jit(actor.init)(jax.random.key(0), obs, goal)
    return actor, params, obs, goal


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("with_goal", [False, True])
def test_output_shapes_per_preset(preset, with_goal):
    """Abstract evaluation: every preset builds and traces at 16x16 with the right shapes."""
    config = NetworkConfig(torso=preset)
    obs = make_obs(jax.random.key(1), features=True)
    goal = make_obs(jax.random.key(2), features=True) if with_goal else None
    actor, critic = Actor(config, ACTION), Critic(config, ATOMS)
    actor_params = jax.eval_shape(actor.init, jax.random.key(0), obs, goal)
    action = jax.eval_shape(actor.apply, actor_params, obs, goal)
    critic_params = jax.eval_shape(critic.init, jax.random.key(0), obs, goal, action)
    logits = jax.eval_shape(critic.apply, critic_params, obs, goal, action)
    assert (action.shape, action.dtype) == ((2, ACTION), jnp.float32)
    assert (logits.shape, logits.dtype) == ((2, ATOMS), jnp.float32)
    assert conv_kernels(actor_params) == num_conv_layers(PRESETS[preset])
    first_kernel = actor_params["params"]["Encoder_0"]["ResNetTorso_0"]["Conv_0"]["kernel"]
    assert first_kernel.shape[2] == (6 if with_goal else 3)  # goal frames channel-stacked


def test_tiny_preset_runs_with_bounded_actions(tiny_actor):
    actor, params, obs, goal = tiny_actor
    critic = Critic(actor.config, ATOMS)

    @jax.jit
    def run(params, obs, goal):
        action = actor.apply(params, obs, goal)
        critic_params = critic.init(jax.random.key(3), obs, goal, action)
        return action, critic.apply(critic_params, obs, goal, action)

    action, logits = run(params, obs, goal)
    assert action.shape == (2, ACTION) and bool(jnp.all(jnp.abs(action) <= 1.0))
    assert logits.shape == (2, ATOMS) and bool(jnp.all(jnp.isfinite(logits)))


def test_paper_preset_is_resnet34_sized():
    config = NetworkConfig(torso="paper")
    obs = make_obs(jax.random.key(1))
    critic = Critic(config, ATOMS)
    action = jnp.zeros((2, ACTION))
    params = jax.eval_shape(critic.init, jax.random.key(0), obs, obs, action)
    assert conv_kernels(params) == 20
    widths = {leaf.shape[-1] for leaf in jax.tree.leaves(params) if leaf.ndim == 4}
    assert max(widths) == 512
    assert count_params(params) > 10_000_000


def test_preset_stats_counts_grow_with_size():
    stats = {s.preset: s for s in preset_stats(image_size=IMAGE, proprio_dim=PROPRIO)}
    assert [stats[p].conv_layers for p in ("impala", "paper")] == [15, 20]
    order = ["tiny", "small", "impala", "paper"]
    flops = [stats[p].critic_flops for p in order]
    assert flops == sorted(flops) and flops[0] > 0
    assert stats["paper"].actor_params > 10 * stats["impala"].actor_params
    # Doubling the image side roughly quadruples the conv FLOPs.
    bigger = network_stats(NetworkConfig(torso="impala"), image_size=2 * IMAGE)
    assert bigger.actor_flops > 3 * stats["impala"].actor_flops


def test_instance_norm_normalises_each_sample():
    x = jax.random.normal(jax.random.key(0), (3, 6, 6, 4))
    x = (
        x * jnp.array([1.0, 10.0, 0.1])[:, None, None, None]
        + jnp.array([0.0, 5.0, -3.0])[:, None, None, None]
    )
    norm = ConvNorm("instance")
    y = norm.apply(norm.init(jax.random.key(1), x), x)
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(1, 2)), 1.0, atol=1e-3)


def test_layer_norm_normalises_each_sample_over_all_axes():
    x = jax.random.normal(jax.random.key(0), (2, 5, 5, 4)) * jnp.arange(1, 5) + jnp.arange(4)
    norm = ConvNorm("layer")
    y = norm.apply(norm.init(jax.random.key(1), x), x)
    np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(1, 2, 3)), 1.0, atol=1e-3)
    assert float(jnp.max(jnp.abs(y.mean(axis=(1, 2))))) > 0.1  # not per channel


@pytest.mark.parametrize("norm", ["instance", "layer", "group"])
def test_conv_norm_never_mixes_samples(norm):
    x = jax.random.normal(jax.random.key(0), (3, 6, 6, 8))
    changed = x.at[1:].set(jax.random.normal(jax.random.key(1), (2, 6, 6, 8)) * 7.0 + 2.0)
    module = ConvNorm(norm, groups=4)
    params = module.init(jax.random.key(2), x)
    a, b = module.apply(params, x), module.apply(params, changed)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-5, atol=1e-5)
    assert float(jnp.max(jnp.abs(a[1:] - b[1:]))) > 0.1


def test_network_samples_do_not_interact(tiny_actor):
    actor, params, obs, goal = tiny_actor
    apply = jax.jit(actor.apply)
    other = make_obs(jax.random.key(7))
    changed = jax.tree.map(lambda x, y: x.at[1:].set(y[1:]), obs, other)  # sample 0 kept
    a, b = apply(params, obs, goal), apply(params, changed, goal)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-5, atol=1e-6)
    assert float(jnp.max(jnp.abs(a[1:] - b[1:]))) > 0


def test_pixels_and_goal_change_the_output(tiny_actor):
    actor, params, obs, goal = tiny_actor
    base = actor.apply(params, obs, goal)
    other_goal = dict(goal, pixels=255 - goal["pixels"])
    other_obs = dict(obs, pixels=255 - obs["pixels"])
    assert float(jnp.max(jnp.abs(actor.apply(params, obs, other_goal) - base))) > 0
    assert float(jnp.max(jnp.abs(actor.apply(params, other_obs, goal) - base))) > 0


def test_features_variant_ignores_pixels_and_uses_goal():
    config = NetworkConfig(inputs="features", torso_hidden=(16,), head_hidden=(16,))
    critic = Critic(config, ATOMS)
    obs, goal = make_obs(jax.random.key(1), features=True), make_obs(jax.random.key(2))
    goal["features"] = jnp.ones((2, 4))
    action = jnp.zeros((2, ACTION))
    params = critic.init(jax.random.key(0), obs, goal, action)
    assert conv_kernels(params) == 0
    base = critic.apply(params, obs, goal, action)
    no_pixels = {k: v for k, v in obs.items() if k != "pixels"}
    np.testing.assert_array_equal(critic.apply(params, no_pixels, goal, action), base)
    moved_goal = dict(goal, proprio=goal["proprio"] + 1.0)
    assert float(jnp.max(jnp.abs(critic.apply(params, obs, moved_goal, action) - base))) > 0
    assert float(jnp.max(jnp.abs(critic.apply(params, obs, goal, action + 0.5) - base))) > 0


def test_proprio_variant_reads_the_arm_alone():
    """inputs="proprio" is blind to the blocks: features and pixels leave it unchanged."""
    config = NetworkConfig(inputs="proprio", torso_hidden=(16,), head_hidden=(16,))
    actor = Actor(config, ACTION)
    obs, goal = (make_obs(jax.random.key(k), features=True) for k in (1, 2))
    params = actor.init(jax.random.key(0), obs, goal)
    assert conv_kernels(params) == 0
    base = actor.apply(params, obs, goal)
    blind = {k: v for k, v in obs.items() if k == "proprio"}
    goal_blind = {k: v for k, v in goal.items() if k == "proprio"}
    np.testing.assert_array_equal(actor.apply(params, blind, goal_blind), base)
    moved = dict(obs, features=obs["features"] + 1.0, pixels=255 - obs["pixels"])
    np.testing.assert_array_equal(actor.apply(params, moved, goal), base)
    moved_goal = dict(goal, proprio=goal["proprio"] + 1.0)
    assert float(jnp.max(jnp.abs(actor.apply(params, obs, moved_goal) - base))) > 0


def test_leading_axes_unbatched_and_vmapped_agree(tiny_actor):
    actor, params, obs, goal = tiny_actor
    batched = actor.apply(params, obs, goal)  # (2, A)
    first = jax.tree.map(lambda x: x[0], (obs, goal))
    single = actor.apply(params, *first)
    vmapped = jax.vmap(actor.apply, in_axes=(None, 0, 0))(params, obs, goal)
    nested = actor.apply(params, *jax.tree.map(lambda x: x[None], (obs, goal)))  # (1, 2, A)
    assert single.shape == (ACTION,) and nested.shape == (1, 2, ACTION)
    np.testing.assert_allclose(single, batched[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vmapped, batched, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nested[0], batched, rtol=1e-5, atol=1e-6)


def test_no_retracing_across_calls(tiny_actor):
    actor, params, obs, goal = tiny_actor

    @jax.jit
    @chex.assert_max_traces(n=1)
    def apply(params, obs, goal):
        return actor.apply(params, obs, goal)

    outputs = [apply(params, make_obs(jax.random.key(i)), goal) for i in range(3)]
    assert float(jnp.max(jnp.abs(outputs[0] - outputs[1]))) > 0
    chex.clear_trace_counter()


@pytest.mark.parametrize("kernel_shape", [(3, 3, 4, 5), (1, 3, 2, 3)])
def test_conv_gradients_match_autodiff_of_lax_conv(kernel_shape):
    x = jax.random.normal(jax.random.key(0), (2, 6, 5, kernel_shape[2]))
    kernel = jax.random.normal(jax.random.key(1), kernel_shape)
    weights = jax.random.normal(jax.random.key(2), (2, 6, 5, kernel_shape[3]))

    def loss(conv, x, kernel):
        return jnp.sum(weights * jnp.tanh(conv(x, kernel)))

    def reference(x, kernel):
        return jax.lax.conv_general_dilated(
            x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    ours = jax.jit(jax.grad(functools.partial(loss, conv2d_same), argnums=(0, 1)))(x, kernel)
    expected = jax.grad(functools.partial(loss, reference), argnums=(0, 1))(x, kernel)
    for got, want in zip(ours, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(conv2d_same(x, kernel), reference(x, kernel), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 16, 16, 3), (2, 15, 9, 4), (1, 21, 8, 2), (1, 1, 2, 1)])
def test_max_pool_matches_flax_values_and_gradients(shape):
    x = jax.random.normal(jax.random.key(0), shape)

    def reference(x):
        return nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")

    np.testing.assert_array_equal(max_pool_3x3_stride2(x), reference(x))
    loss = lambda pool: jax.grad(lambda x: jnp.sum(jnp.sin(pool(x))))(x)
    np.testing.assert_array_equal(loss(max_pool_3x3_stride2), loss(reference))


def test_pool_strides_other_than_one_or_two_are_refused():
    with pytest.raises(ValueError, match="pool_stride must be 1 or 2"):
        Stage(8, pool_stride=3)


def test_spatial_softmax_finds_each_maps_peak_and_points_between_two():
    maps = jnp.zeros((1, 5, 5, 2)).at[0, 1, 3, 0].set(1.0)  # map 0: a peak at row 1, col 3
    maps = maps.at[0, 4, 0, 1].set(1.0).at[0, 4, 1, 1].set(1.0)  # map 1: two, row 4
    readout = SpatialSoftmax(2)
    sharp = {"params": {"Dense_0": {"kernel": 100.0 * jnp.eye(2), "bias": jnp.zeros(2)}}}
    sharp["params"]["log_temperature"] = jnp.zeros(())
    keypoints = readout.apply(sharp, maps)  # x of both, then y of both
    np.testing.assert_allclose(keypoints[0], [0.5, -0.75, -0.5, 1.0], atol=1e-4)


def test_keypoint_readout_sizes_the_embedding_by_its_keypoints():
    config = NetworkConfig(torso="tiny", keypoints=16, torso_hidden=(32,), head_hidden=(32,))
    actor = Actor(config, ACTION)
    obs, goal = make_obs(jax.random.key(3)), make_obs(jax.random.key(4))
    params = actor.init(jax.random.key(5), obs, goal)
    dense = params["params"]["Encoder_0"]["LayerNormMLP_0"]["Dense_0"]["kernel"]
    assert dense.shape == (2 * 16, 32)
    assert actor.apply(params, obs, goal).shape == (2, ACTION)
    with pytest.raises(ValueError, match="keypoints must be >= 0"):
        NetworkConfig(keypoints=-1)
