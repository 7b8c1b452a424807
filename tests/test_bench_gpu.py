"""``bench gpu --tiny``: every part runs at smoke sizes on CPU and writes its results."""

import json

import pytest

from mjx_metamimic.bench import gpu_bench


def test_bench_gpu_tiny_runs_every_part(tmp_path):
    code = gpu_bench.main(["--tiny", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "gpu.json").read_text())
    parts = summary["parts"]
    assert set(parts) == set(gpu_bench.PARTS)
    for name, result in parts.items():
        # Only the render baseline (MuJoCo's OpenGL renderer) may be missing on a machine.
        missing_gl = name == "render" and "ReferenceUnavailable" in result.get("error", "")
        assert result["ok"] or missing_gl, result.get("traceback")
    assert code == (0 if all(r["ok"] for r in parts.values()) else 1)
    train = parts["train"]
    assert train["env_steps_per_s"] > 0 and train["updates_per_s"] > 0
    assert train["num_envs"] == 2 and train["image_size"] == 16
    for name in ("env", "learner"):
        assert json.loads((tmp_path / f"{name}.json").read_text())["benchmark"] == name
    assert "paper chunk" in (tmp_path / "gpu.md").read_text()


def test_bench_gpu_refuses_unknown_parts(tmp_path):
    with pytest.raises(ValueError, match="unknown bench gpu part"):
        gpu_bench.main(["--parts", "physics", "--out", str(tmp_path)])
