"""Named run configs: loading, validation, errors that name the problem."""

import dataclasses
import json

import pytest

from mjx_metamimic import configs
from mjx_metamimic.training.config import TrainConfig
from mjx_metamimic.training.run_dir import load_run_config, save_config


@pytest.mark.parametrize("name", ["cpu", "features", "paper"])
def test_shipped_configs_load(name):
    assert name in configs.config_names()
    config = configs.load(TrainConfig, name)
    assert config.name == name
    assert config.learner_configs()["imitation"].network == config.learner.network


def test_features_config_sees_no_pixels_and_pixel_configs_no_features():
    assert configs.load(TrainConfig, "features").obs_keys == ("proprio", "features")
    assert configs.load(TrainConfig, "cpu").obs_keys == ("pixels", "proprio")
    paper = configs.load(TrainConfig, "paper")
    assert paper.learner.network.torso == "paper" and paper.learner.network.norm == "instance"


def test_success_mixing_is_for_the_task_learner_only():
    """The features config trains both learners and mixes half of the task learner's rows;
    without the task learner no batch rows are drawn for it."""
    features = configs.load(TrainConfig, "features")
    assert features.learner.success_fraction == 0.5 and features.learner.train_task
    assert features.success_batch_size == 128  # half of batch 256
    imitation_only = dataclasses.replace(
        features, learner=dataclasses.replace(features.learner, train_task=False)
    )
    assert imitation_only.success_batch_size == 0


def test_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\n[learner]\nbatch_sise = 3\n')
    with pytest.raises(configs.ConfigError, match=r"bad\.toml.*learner\.batch_sise"):
        configs.load(TrainConfig, str(path))


def test_invalid_toml_and_unknown_name(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(configs.ConfigError, match="not valid TOML"):
        configs.load(TrainConfig, str(path))
    with pytest.raises(configs.ConfigError, match="unknown config 'nope'"):
        configs.load(TrainConfig, "nope")


def test_impossible_values_are_config_errors(tmp_path):
    path = tmp_path / "impossible.toml"
    path.write_text("image_size = 32\n[demos]\nimage_size = 64\n")
    with pytest.raises(configs.ConfigError, match="differs from demos.image_size"):
        configs.load(TrainConfig, str(path))
    path.write_text("[learner.imitation.network]\ntorso = 'tiny'\n")
    with pytest.raises(configs.ConfigError, match=r"learner\.imitation\.network is not used"):
        configs.load(TrainConfig, str(path))
    path.write_text("[run]\neval_task_episodes = 0\n")
    with pytest.raises(configs.ConfigError, match=r"run\.eval_task_episodes=0 must be >= 1"):
        configs.load(TrainConfig, str(path))


def test_run_config_round_trips_through_json(tmp_path):
    config = configs.load(TrainConfig, "cpu")
    save_config(config, tmp_path)
    json.loads((tmp_path / "config.json").read_text())  # plain JSON
    assert load_run_config(tmp_path) == config
    changed = dataclasses.replace(
        config,
        image_size=0,
        learner=configs.load(TrainConfig, "features").learner,
        imitation_reward=configs.load(TrainConfig, "features").imitation_reward,
    )
    save_config(changed, tmp_path)
    assert load_run_config(tmp_path) == changed


def test_nested_table_overrides_only_its_keys(tmp_path):
    path = tmp_path / "tuned.toml"
    path.write_text('[learner.imitation]\nactor_lr = 3e-4\n\n[learner.task]\nv_max = 10.0\n')
    config = configs.load(TrainConfig, str(path))
    default = TrainConfig()
    assert config.learner.imitation == dataclasses.replace(
        default.learner.imitation, actor_lr=3e-4
    )  # still the goal-conditioned imitation learner on its own support
    assert config.learner.task == dataclasses.replace(default.learner.task, v_max=10.0)
