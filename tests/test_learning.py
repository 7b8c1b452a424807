"""Learning through the library's trainer: a few minutes of MetaMimic training on real
demonstrations (features, no pixels) must follow held-out demos far better than the
zero-action policy, measured by the same evaluator in the same run with fixed seeds. The
finished run directory then serves the ``eval`` command's test."""

import dataclasses
import json

import pytest

import mjx_metamimic  # noqa: F401  (default XLA flags before jax use)
from mjx_metamimic import cli, configs, training
from mjx_metamimic.training.config import DemoSpec, RunConfig, TrainConfig

NUM_DEMOS = 40  # the recorded_demos fixture's: 36 train, 4 validation
NUM_CHUNKS = 250  # 16 envs x 10 steps each: 40k env steps, ~3.9k learner updates
NUM_ENVS = 16


def learning_config(path, out_dir) -> TrainConfig:
    """The shipped ``features`` config with fewer envs, a quicker-filling replay and a
    budget in env steps."""
    base = configs.load(TrainConfig, "features")
    steps_per_chunk = base.actors.steps_per_chunk
    return dataclasses.replace(
        base,
        demos=DemoSpec(path=path, num=NUM_DEMOS, image_size=16),
        actors=dataclasses.replace(base.actors, num_envs=NUM_ENVS),
        learner=dataclasses.replace(base.learner, train_task=False),
        replay=dataclasses.replace(base.replay, capacity=50_000, min_size=1_000),
        run=RunConfig(
            max_minutes=60.0,  # a safety cap only: the budget is env steps
            max_env_steps=NUM_CHUNKS * NUM_ENVS * steps_per_chunk,
            log_every=50,
            eval_every=0,
            checkpoint_every=125,
            out_dir=out_dir,
            video_demos=1,
            video_size=16,
        ),
    )


@pytest.fixture(scope="module")
def trained(recorded_demos, tmp_path_factory):
    config = learning_config(recorded_demos, tmp_path_factory.mktemp("runs"))
    reports = []
    result = training.train(config, progress_fn=lambda step, row: reports.append((step, row)))
    return result, reports, config


def test_imitation_policy_follows_held_out_demos_better_than_zero_actions(trained):
    result, _, _ = trained
    final = result.final_eval
    agent = {k.removeprefix("eval/agent/"): v for k, v in final.items() if "/agent/" in k}
    zero = {k.removeprefix("eval/zero/"): v for k, v in final.items() if "/zero/" in k}
    # Measured on MJX's JAX engine (seed 0, 3.9k updates): joint error 0.14 vs 0.69 rad,
    # reward 0.34 vs 0.20, 3 of 4 demos tracked vs none; the bounds leave room for other
    # CPUs' float rounding and for the C engine (the CPU default), which passes them too.
    assert agent["joint_error"] < 0.5 * zero["joint_error"], (agent, zero)
    assert agent["reward"] > zero["reward"] + 0.05, (agent, zero)
    assert agent["tracked"] >= 0.5 > zero["tracked"], (agent, zero)
    # no task learner here: the baselines' task episodes (fresh layouts and the demos'
    # first states) are still measured, and standing still stacks nothing
    assert zero["task_success"] == zero["task_success_from_demos"] == 0.0
    assert zero["task_grasped"] == zero["task_lifted"] == 0.0 < zero["task_closest_reach"], zero
    assert "task_success" not in agent and final["eval/demos/steps_to_stack"] > 0
    assert final["eval/demos/ended_stacked"] == 1.0  # demos are kept only if they stack


def test_trainer_reports_and_leaves_a_complete_run_directory(trained):
    result, reports, config = trained
    train_rows = [row for _, row in reports if "train/updates" in row]
    assert [int(step) for step, row in reports if "train/updates" in row] == [
        NUM_ENVS * 10 * chunk for chunk in (50, 100, 150, 200, 250)
    ]
    assert int(train_rows[-1]["train/updates"]) >= 3_000, train_rows[-1]["train/updates"]
    assert train_rows[-1]["time/env_steps_per_s"] > 0
    assert "eval/agent/reward" in reports[-1][1]  # the final evaluation is reported too
    run_dir = result.run_dir
    for name in ("config.json", "metrics.csv", "eval.csv", "eval.json", "learning_curves.png"):
        assert (run_dir / name).is_file(), name
    assert list(run_dir.glob("imitation.*")), "no imitation video"
    written = json.loads((run_dir / "eval.json").read_text())
    assert written == pytest.approx(result.final_eval, nan_ok=True)
    steps = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [125, 250]
    assert training.load_run_config(run_dir) == config  # config.json reads back exactly


def test_eval_command_evaluates_the_latest_checkpoint(trained, capsys):
    result, _, _ = trained
    code = cli.main(["eval", "--run", str(result.run_dir), "--policy", "agent", "--seed", "1"])
    assert code == 0
    written = json.loads((result.run_dir / "eval-validation.json").read_text())
    assert written["checkpoint"] == 250
    # The final evaluation in training used seed run.seed + 1 = 1 as well: same numbers.
    for name in ("reward", "joint_error", "tracked"):
        assert written[f"eval/agent/{name}"] == pytest.approx(
            result.final_eval[f"eval/agent/{name}"], rel=1e-5
        ), name
    assert "one-shot evaluation" in capsys.readouterr().out


def test_commands_refuse_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert cli.main(["eval", "--run", str(tmp_path)]) == 2
    assert cli.main(["train", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("a run directory?") == 2 and "Traceback" not in err


def test_evaluation_line_sets_stacking_beside_the_zero_policy_and_the_demos():
    from mjx_metamimic.training.trainer import against_baselines

    result = {
        "eval/agent/ended_stacked": 0.3,
        "eval/zero/ended_stacked": 0.0,
        "eval/demos/ended_stacked": 1.0,
        "eval/agent/joint_error": 0.08,
        "eval/zero/joint_error": 0.76,
    }
    line = against_baselines(result, 10)
    assert "agent 3/10, zero policy 0/10, the demos 10/10" in line and "9.5x below" in line
