"""The run's metric logs: one CSV row per call, and exact resumption after a kill."""

import csv

from mjx_metamimic.training.metrics_log import MetricsLog


def env_steps(path) -> list[float]:
    with path.open() as f:
        return [float(row["env_steps"]) for row in csv.DictReader(f)]


def test_resume_drops_rows_past_the_checkpoint(tmp_path):
    log = MetricsLog(tmp_path)
    for step in (10, 20, 30, 40):  # the run logged up to 40, its last checkpoint was at 20
        log.write(step, {"loss": step / 10})
    log.close()
    resumed = MetricsLog(tmp_path)
    assert resumed.resume_at(20) == 2
    for step in (30, 40, 50):  # the resumed run logs those steps again
        resumed.write(step, {"loss": step / 100})
    resumed.close()
    assert env_steps(tmp_path / "metrics.csv") == [10, 20, 30, 40, 50]
    assert resumed.read()["loss"].tolist() == [1.0, 2.0, 0.3, 0.4, 0.5]


def test_resume_of_an_unwritten_log_is_harmless(tmp_path):
    log = MetricsLog(tmp_path, "eval")
    assert log.resume_at(100) == 0
    log.write(110, {"reward": 0.5})
    log.close()
    assert env_steps(tmp_path / "eval.csv") == [110]
