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
