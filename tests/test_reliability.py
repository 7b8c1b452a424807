"""Bad input refused by name and faults survived (the rows of docs/reliability.md that no
other test file covers)."""

import dataclasses
import json
import sys
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mjx_metamimic import cli, configs, demos, training
from mjx_metamimic.agents import D4PG, D4PGConfig, probes
from mjx_metamimic.errors import TrainingDiverged
from mjx_metamimic.networks import NetworkConfig
from mjx_metamimic.training import checkpoints
from mjx_metamimic.training import trainer as trainer_module
from mjx_metamimic.training.config import DemoSpec, TrainConfig
from mjx_metamimic.training.run_dir import save_config


def test_an_out_dir_that_is_a_run_is_refused_and_left_as_it_was(tmp_path: Path, capsys):
    config = configs.load(TrainConfig, "features")
    save_config(config, tmp_path)
    before = sorted(tmp_path.iterdir())
    code = cli.main(["train", "--config", "features", "--run.out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "is itself a run directory" in err and "--resume" in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(tmp_path.iterdir()) == before


def test_demos_recorded_with_other_env_settings_are_refused_by_name(recorded_demos):
    base = configs.load(TrainConfig, "features")
    config = dataclasses.replace(
        base,
        demos=DemoSpec(path=recorded_demos, num=40, image_size=16),
        env=dataclasses.replace(base.env, block_angle=0.3),
    )
    differ = r"env config fields differ: \[.block_angle.\]"
    with pytest.raises(demos.DemoDatasetError, match=differ):
        training.load_banks(config)
    same = dataclasses.replace(config, env=dataclasses.replace(base.env, impl="jax"))
    assert training.load_banks(same)["validation"].num_demos == 4  # the engine is not a setting


def test_a_run_stops_by_name_after_too_many_nonfinite_steps_in_a_row(tmp_path: Path):
    network = NetworkConfig(inputs="features", torso_hidden=(8,), head_hidden=(8,))
    learner = D4PG(D4PGConfig(stream=probes.STREAM, network=network), action_dim=1)
    state = jax.jit(learner.init)(jax.random.key(0), {"proprio": jnp.zeros((2,))})

    def with_streak(n: int):
        opt = state.critic_opt_state._replace(notfinite_count=jnp.int32(n))
        return {"imitation": state.replace(critic_opt_state=opt)}

    config = configs.load(TrainConfig, "features")  # run.max_nonfinite_updates = 100
    fake = types.SimpleNamespace(config=config, run_dir=tmp_path)
    trainer_module.Trainer._check_finite(fake, types.SimpleNamespace(learners=with_streak(99)))
    with pytest.raises(TrainingDiverged, match="imitation learner skipped its last 100"):
        trainer_module.Trainer._check_finite(fake, types.SimpleNamespace(learners=with_streak(100)))


def test_a_diverged_run_ends_the_command_with_one_line_and_exit_code_1(monkeypatch, capsys):
    def diverge(*args, **kwargs):
        raise TrainingDiverged("the imitation learner skipped its last 100 gradient steps")

    monkeypatch.setattr(training, "train", diverge)
    code = cli.main(["train", "--config", "features"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "training stopped" in err


def test_a_checkpoint_write_cut_short_leaves_the_previous_one_usable(tmp_path: Path):
    """orbax writes into ``<step>.orbax-checkpoint-tmp-*`` and renames it when complete, so
    a kill mid-write leaves only a temporary directory, which restore ignores."""
    state = {"w": jnp.arange(4.0), "step": jnp.int32(3)}
    checkpoints.save(checkpoints.manager(tmp_path), 3, state)
    partial = tmp_path / "checkpoints" / "5.orbax-checkpoint-tmp-1764950000000000"
    partial.mkdir()
    (partial / "half-written").write_bytes(b"\0" * 10)
    step, restored = checkpoints.restore_latest(checkpoints.manager(tmp_path), state)
    assert step == 3
    np.testing.assert_array_equal(restored["w"], state["w"])


def test_ctrl_c_checkpoints_evaluates_and_returns(tiny_features, tmp_path: Path):
    """Ctrl-C (KeyboardInterrupt, here raised from the progress callback at the second
    report) ends training cleanly: a checkpoint of that chunk, eval.json, totals.json."""
    reports = []

    def interrupt(env_steps, metrics):
        reports.append(env_steps)
        if len(reports) == 2:
            raise KeyboardInterrupt

    result = training.train(tiny_features(tmp_path), progress_fn=interrupt)
    totals = json.loads((result.run_dir / "totals.json").read_text())
    assert totals["chunks"] == 2 and (result.run_dir / "eval.json").exists()
    assert checkpoints.manager(result.run_dir).latest_step() == 2
    assert np.isfinite(result.final_eval["eval/agent/reward"])


def test_commands_cap_malloc_arenas_unless_the_user_chose(monkeypatch):
    """The cap that keeps a long run's memory flat (docs/reliability.md, soak)."""
    from mjx_metamimic._malloc import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert limit_malloc_arenas() is False
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert limit_malloc_arenas() is sys.platform.startswith("linux")
