"""Metric logging and learning-curve plots of a run directory."""

import numpy as np
import pytest

from mjx_metamimic.training.metrics_log import MetricsLog
from mjx_metamimic.training.plots import learning_curves


def test_logged_metrics_are_read_back_and_plotted(tmp_path):
    log = MetricsLog(tmp_path)
    for step in range(5):
        log.write(100 * step, {"train/actor/imitation_reward": 0.1 * step, "train/env/stacked": 0})
    log.close()
    columns = MetricsLog(tmp_path).read()
    np.testing.assert_allclose(columns["env_steps"], [0, 100, 200, 300, 400])
    np.testing.assert_allclose(columns["train/actor/imitation_reward"], [0, 0.1, 0.2, 0.3, 0.4])
    path = learning_curves(columns, tmp_path / "curves.png")
    assert path is not None and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_row_with_other_metrics_is_an_error_not_a_silent_drop(tmp_path):
    log = MetricsLog(tmp_path)
    log.write(0, {"a": 1.0})
    with pytest.raises(ValueError, match=r"new \['b'\]"):
        log.write(1, {"a": 1.0, "b": 2.0})
    log.close()


def test_nothing_to_plot_writes_nothing(tmp_path):
    assert learning_curves({"env_steps": np.arange(3.0)}, tmp_path / "x.png") is None
    assert not (tmp_path / "x.png").exists()


def test_evaluations_add_their_panels_to_the_training_curves(tmp_path):
    train = {
        "env_steps": np.arange(4.0),
        "train/actor/imitation_reward": np.arange(4.0),
        "train/task/bc_share": np.full(4, 0.2),
    }
    evaluations = {
        "env_steps": np.array([3.0]),
        "eval/agent/task_success": np.array([0.5]),
        "eval/agent/ended_stacked": np.array([np.nan]),  # not evaluated: no panel
    }
    path = learning_curves(train, tmp_path / "curves.png", evaluations)
    width = int.from_bytes(path.read_bytes()[16:20], "big")  # the PNG header's width
    assert width == 3 * 320  # 3 panels of 3.2 in at 100 dpi
    only_eval = learning_curves({}, tmp_path / "eval.png", evaluations)
    assert int.from_bytes(only_eval.read_bytes()[16:20], "big") == 320
