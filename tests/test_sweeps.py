"""Sweeps: specs, seeds vmapped in one program, and the sweep command killed and rerun."""

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mjx_metamimic import sweeps
from mjx_metamimic.configs import ConfigError
from mjx_metamimic.sweeps.spec import spec_path
from mjx_metamimic.training import Trainer
from mjx_metamimic.training.run_dir import create_run_dir, save_config

REPO = Path(__file__).resolve().parents[1]


def test_every_shipped_spec_resolves_at_every_scale():
    assert {"fig5", "fig6", "fig8"} <= set(sweeps.spec_names())
    for name in sweeps.spec_names():
        for scale in sweeps.SCALES:
            sweep = sweeps.load_sweep(name, scale)
            assert len(sweep.cells) >= 2 and len(sweep.seeds) >= 2, (name, scale)
            assert len({c.name for c in sweep.cells}) == len(sweep.cells)
            for cell in sweep.cells:
                assert cell.config.run.max_updates or cell.config.run.max_env_steps < 10**7


def test_a_spec_wide_set_reaches_every_scale_and_a_scale_set_overrides_it(tmp_path: Path):
    for scale in sweeps.SCALES:  # fig5 is imitation-only on the two-learner features base
        assert not any(c.config.learner.train_task for c in sweeps.load_sweep("fig5", scale).cells)
    spec = tmp_path / "wide.toml"
    body = 'base = "features"\n[set]\n"actors.num_envs" = 8\n"learner.train_task" = false\n'
    body += '[[axis]]\nname = "x"\n"learner.batch_size" = [16, 32]\n'
    body += '[scale.smoke]\nmax_updates = 4\nset = { "actors.num_envs" = 4 }\n'
    spec.write_text(body)
    cells = sweeps.load_sweep(str(spec), "smoke").cells
    assert [c.config.actors.num_envs for c in cells] == [4, 4]
    assert not any(c.config.learner.train_task for c in cells)


def test_spec_errors_name_the_problem(tmp_path: Path):
    spec = tmp_path / "bad.toml"
    body = '[[axis]]\nname = "x"\n"learner.no_such_field" = [1, 2]\n'
    body += "[scale.smoke]\nmax_updates = 4\n"
    spec.write_text(body)
    with pytest.raises(ConfigError, match="no_such_field"):
        sweeps.load_sweep(str(spec), "smoke")
    spec.write_text(body.replace("no_such_field", "batch_size"))
    with pytest.raises(ConfigError, match=r"no \[scale.cpu\]"):
        sweeps.load_sweep(str(spec), "cpu")
    with pytest.raises(ConfigError, match="at least one seed"):
        sweeps.load_sweep(str(spec), "smoke", seeds=0)
    spec.write_text(body.replace("no_such_field", "batch_size") + "bogus = 1\n")
    with pytest.raises(ConfigError, match=r"\[scale.smoke\]: unknown key\(s\) \['bogus'\]"):
        sweeps.load_sweep(str(spec), "smoke")


def _rows(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "metrics.csv").open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_a_seed_trained_in_a_vmapped_batch_matches_it_trained_alone(tiny_features, tmp_path):
    config = tiny_features(tmp_path)
    alone = create_run_dir(tmp_path / "alone")
    save_config(dataclasses.replace(config, run=dataclasses.replace(config.run, seed=1)), alone)
    (alone_final,) = Trainer(
        dataclasses.replace(config, run=dataclasses.replace(config.run, seed=1)), alone
    ).run()
    batch = {seed: create_run_dir(tmp_path / f"seed-{seed}") for seed in (0, 1)}
    finals = Trainer(config, batch).run()

    expected, got, other = _rows(alone), _rows(batch[1]), _rows(batch[0])
    assert len(got) == len(expected) >= 4
    assert got[-1]["train/updates"] == expected[-1]["train/updates"] == 8
    for row_got, row_expected in zip(got, expected, strict=True):
        for name, value in row_expected.items():
            np.testing.assert_allclose(row_got[name], value, rtol=2e-3, atol=2e-4, err_msg=name)
    # The other seed is a different run, not a copy.
    assert any(a["train/actor/imitation_reward"] != b["train/actor/imitation_reward"]
               for a, b in zip(got, other, strict=True))  # fmt: skip
    for name, value in alone_final.items():
        np.testing.assert_allclose(finals[1][name], value, rtol=2e-3, atol=2e-4, err_msg=name)
    totals = json.loads((batch[1] / "totals.json").read_text())
    assert totals["updates"] == 8 and totals["num_params"] > 0


def _sweep(cwd: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": ""}
    main = "import sys; from mjx_metamimic.cli import main; sys.exit(main())"
    command = [sys.executable, "-c", main, "sweep", "fig5.toml", "--scale", "smoke",
               "--out", "sweep", *args]  # fmt: skip
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def test_sweep_killed_mid_cell_resumes_and_reports(recorded_demos, tmp_path: Path):
    """The shipped fig5 spec at smoke scale, cut to its first cell (the whole spec runs in
    notebooks/ablations.ipynb): SIGKILL once the cell has checkpointed, rerun: every seed
    finishes evaluated, its logs strictly increasing, reports written; a finished cell is
    skipped; another seed count is refused by name."""
    shipped = spec_path("fig5").read_text()
    assert '"demos.num_train" = [4, 16]' in shipped
    (tmp_path / "fig5.toml").write_text(shipped.replace("[4, 16]", "[4]"))
    # The smoke spec's dataset settings are the recorded_demos fixture's (40 demos, seed 0,
    # 16 px, 200 steps, 10 settle steps): link it instead of recording again.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "demos-smoke-16").symlink_to(recorded_demos)
    first = tmp_path / "sweep" / "cells" / "demos-4"
    process = _sweep(tmp_path)
    deadline = time.monotonic() + 300
    # A finished checkpoint: orbax writes into a temporary name and renames it to the step.
    while not [p for p in first.glob("seed-*/checkpoints/*") if p.name.isdigit()]:
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (first / "seed-0" / "eval.json").exists()

    rerun = _sweep(tmp_path)
    output = rerun.communicate(timeout=600)[0]
    assert rerun.returncode == 0, output
    assert "resumed from chunk" in output, output
    sweep_dir = tmp_path / "sweep"
    with (sweep_dir / "results.csv").open() as f:
        results = list(csv.DictReader(f))
    assert sorted((r["cell"], r["seed"]) for r in results) == [("demos-4", "0"), ("demos-4", "1")]
    for row in results:
        assert float(row["updates"]) >= 40 and float(row["eval/zero/reward"]) > 0
    for seed in (0, 1):
        steps = [row["env_steps"] for row in _rows(first / f"seed-{seed}")]
        assert steps == sorted(set(steps)), steps
    summary = (sweep_dir / "summary.md").read_text()
    assert "★" in summary and "eval_train/agent/reward" in summary
    assert (sweep_dir / "chart.png").stat().st_size < 200_000

    # Rerun in-process (no new JAX start-up): everything is done; more seeds are refused.
    sweep = sweeps.load_sweep(str(tmp_path / "fig5.toml"), "smoke")
    cell = sweep.cells[0]
    mtime = (first / "seed-0" / "eval.json").stat().st_mtime
    sweeps.run_cell(sweep_dir, cell, sweep.seeds)
    assert (first / "seed-0" / "eval.json").stat().st_mtime == mtime
    with pytest.raises(ValueError, match="differs in seeds"):
        sweeps.run_sweep(sweeps.load_sweep(str(tmp_path / "fig5.toml"), "smoke", 3), sweep_dir)
