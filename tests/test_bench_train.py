"""``bench train``: every variant does the same work per chunk; the results are complete.

Everything is the real thing at tiny sizes, with the C physics engine (the CPU default:
compiling MJX's JAX engine into each of the benchmark's jitted functions would take
minutes on CPU).
"""

import dataclasses
import json

import jax
import pytest
from rich.console import Console

from mjx_metamimic import configs
from mjx_metamimic.bench import train_bench, train_report
from mjx_metamimic.bench.common import reset_bank
from mjx_metamimic.replay import ReplayConfig
from mjx_metamimic.training import build
from mjx_metamimic.training.config import ActorConfig, TrainConfig

NUM_ENVS, STEPS, UPDATES = 2, 3, 2


def tiny_config() -> TrainConfig:
    base = configs.load(TrainConfig, "features")
    return dataclasses.replace(
        base,
        actors=ActorConfig(num_envs=NUM_ENVS, steps_per_chunk=STEPS),
        learner=dataclasses.replace(
            base.learner,
            batch_size=8,
            updates_per_chunk=UPDATES,
            train_task=True,  # both learners, whatever the shipped config trains
            network=dataclasses.replace(
                base.learner.network, torso_hidden=(16,), head_hidden=(16,)
            ),
        ),
        # min_size needs 7 steps per row: the replay is only ready after 3 chunks, so
        # the benchmark must prefill it.
        replay=ReplayConfig(capacity=200, n_step=3, gamma=0.9, min_size=14),
    )


@pytest.fixture(scope="module")
def result():
    config = tiny_config()
    bank = jax.jit(lambda: reset_bank(build(config).env, 2, 8))()
    args = train_bench.TrainBenchArgs(configs=("tiny",), seconds=0.0, rounds=1)
    return train_bench.benchmark_config(config, bank, args, Console(quiet=True))


def test_every_variant_does_the_same_work_per_chunk(result):
    assert result["prefill_chunks"] >= 3  # the replay was filled before timing
    for name in train_bench.VARIANTS:
        v = result["variants"][name]
        assert v["chunks"] >= 2, name
        assert v["env_steps_per_chunk"] == NUM_ENVS * STEPS, name
        assert v["updates_per_chunk"] == UPDATES, name  # learning ran in every chunk
        assert v["env_steps_per_s"] == pytest.approx(NUM_ENVS * STEPS / v["seconds_per_chunk"])
        assert v["updates_per_s"] == pytest.approx(UPDATES / v["seconds_per_chunk"])


def test_results_hold_ratios_and_shares(result):
    json.dumps(result)  # the JSON file's content
    fused = result["variants"]["one-jit"]["seconds_per_chunk"]
    for name in ("split", "host"):
        expected = result["variants"][name]["seconds_per_chunk"] / fused
        assert result["speedup_of_one_jit"][name] == pytest.approx(expected)
        assert result["median_round_speedup_of_one_jit"][name] > 0
    components = result["components"]
    assert list(components) == list(train_report.COMPONENTS)
    assert components["rendering"]["seconds_per_chunk"] == 0.0  # features: no pixels
    for name in ("physics", "replay", "learning"):
        assert components[name]["seconds_per_chunk"] > 0, name
    assert sum(c["share"] for c in components.values()) == pytest.approx(1.0)
    assert result["components_sum_over_one_jit"] > 0
    assert result["impl"] == "c"
    assert result["learner_flops_per_update"] > 0 and result["learner_flops_per_s"] > 0


def test_engine_ratios_compare_each_config_with_its_first_engine(result):
    slower = {
        **result,
        "impl": "jax",
        "variants": {
            "one-jit": {
                **result["variants"]["one-jit"],
                "env_steps_per_s": result["variants"]["one-jit"]["env_steps_per_s"] / 4,
                "updates_per_s": result["variants"]["one-jit"]["updates_per_s"] / 4,
            }
        },
    }
    (ratio,) = train_report.engine_ratios([slower, result])
    assert (ratio["baseline_impl"], ratio["impl"]) == ("jax", "c")
    assert ratio["env_steps_per_s_ratio"] == pytest.approx(4.0)
    assert ratio["updates_per_s_ratio"] == pytest.approx(4.0)


def test_a_config_variant_is_named_by_its_overrides():
    args = train_bench.TrainBenchArgs()
    config = train_bench.bench_config(
        "cpu:learner.network.shared_torso=false,learner.batch_size=64", args
    )
    assert config.name == "cpu:learner.network.shared_torso=false,learner.batch_size=64"
    assert config.learner.batch_size == 64
    assert not config.learner.network.shared_torso
    plain = train_bench.bench_config("cpu", args)
    assert plain.learner.imitation == config.learner.imitation  # the rest is the config's
    with pytest.raises(ValueError, match="not KEY=VALUE"):
        train_bench.bench_config("cpu:learner.batch_size", args)
    with pytest.raises(ValueError, match="unknown key"):
        train_bench.bench_config("cpu:learner.batch=64", args)
