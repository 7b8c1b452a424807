"""Run directories: a new run never writes into another run's directory."""

from pathlib import Path

from mjx_metamimic.training.run_dir import create_run_dir


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path: Path):
    wanted = tmp_path / "runs" / "features-20261124-034714"
    first = create_run_dir(wanted)
    (first / "config.json").write_text("{}")
    second = create_run_dir(wanted)
    third = create_run_dir(wanted)

    assert first == wanted
    assert [second.name, third.name] == [f"{wanted.name}-2", f"{wanted.name}-3"]
    assert (first / "config.json").read_text() == "{}"  # the first run's files are untouched
    assert not any(second.iterdir()) and not any(third.iterdir())
