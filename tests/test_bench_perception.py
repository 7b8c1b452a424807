"""``bench perception``: the supervised probe of where a pixel torso puts the blocks."""

import json

import numpy as np
import pytest

from mjx_metamimic.bench import perception_bench
from mjx_metamimic.cli import main as cli_main
from mjx_metamimic.demos import reader
from mjx_metamimic.envs.stack import StackEnvConfig


def test_the_probe_learns_to_place_the_blocks_of_its_training_frames(recorded_demos, tmp_path):
    out = tmp_path / "perception.json"
    perception_bench.main(["--demos", str(recorded_demos), "--heldout", str(recorded_demos),
                           "--steps", "150", "--reports", "3", "--batch-size", "32",
                           "--out", str(out)])  # fmt: skip
    result = json.loads(out.read_text())
    first, last = result["reports"][0], result["reports"][-1]
    assert [r["step"] for r in result["reports"]] == [50, 100, 150]
    # Predicting the mean scores the spread (explained 0): 150 steps on 16-pixel frames
    # explained 0.64 of the training frames' variance when written.
    assert last["train"]["rmse_cm"] < first["train"]["rmse_cm"]
    assert last["train"]["explained"] > 0.3, last
    assert result["frames"]["train"] > result["frames"]["validation"] > 0


def test_synthetic_frames_are_fresh_layouts_on_the_table(recorded_demos):
    demos = reader.load(recorded_demos, "train")
    frames, positions = perception_bench.synthetic_frames(demos, recorded_demos, 6, seed=0)
    assert frames.shape == (6, 16, 16, 3) and frames.dtype == np.uint8
    blocks = positions.reshape(6, 2, 3)
    np.testing.assert_allclose(blocks[..., 2], 0.025, atol=1e-4)  # resting, not held
    radius = np.linalg.norm(blocks[..., :2], axis=-1)
    low, high = StackEnvConfig().block_radius
    assert np.all((radius >= low - 1e-4) & (radius <= high + 1e-4))
    assert len({frame.tobytes() for frame in frames}) == 6


@pytest.mark.parametrize(
    "extra, message",
    [(["--steps", "1", "--reports", "2"], "steps >= reports"), ([], "missing manifest")],
)
def test_bad_requests_end_with_one_line(recorded_demos, tmp_path, capsys, extra, message):
    heldout = recorded_demos if extra else tmp_path  # an empty directory is no dataset
    argv = ["bench", "perception", "--demos", str(recorded_demos), "--heldout", str(heldout)]
    assert cli_main([*argv, "--out", str(tmp_path / "p.json"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "p.json").exists()
