"""``bench gpu --tiny``: its parts run at smoke sizes on CPU and write their results."""

import json

import pytest
import tyro

from mjx_metamimic.bench import gpu_bench, learner_bench, render_bench


def test_bench_gpu_tiny_runs_its_train_and_env_parts(tmp_path):
    """The parts this benchmark adds (its train loop at paper settings, the env sub-bench);
    the render and learner parts are ``bench render``/``bench learner`` themselves, whose
    options are checked below without spending the suite's minutes on their runs."""
    code = gpu_bench.main(["--tiny", "--parts", "train", "env", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "gpu.json").read_text())
    parts = summary["parts"]
    assert set(parts) == {"train", "env"}
    for result in parts.values():
        assert result["ok"], result.get("traceback")
    assert code == 0
    train = parts["train"]
    assert train["env_steps_per_s"] > 0 and train["updates_per_s"] > 0
    assert train["num_envs"] == 2 and train["image_size"] == 16
    assert json.loads((tmp_path / "env.json").read_text())["benchmark"] == "env"
    assert "paper chunk" in (tmp_path / "gpu.md").read_text()


@pytest.mark.parametrize("tiny", [True, False])
def test_bench_gpu_passes_valid_options_to_the_render_and_learner_benches(tmp_path, tiny):
    args = gpu_bench.GpuBenchArgs(tiny=tiny)
    for part, module, cls in (
        ("render", render_bench, render_bench.RenderBenchArgs),
        ("learner", learner_bench, learner_bench.LearnerBenchArgs),
    ):
        argv = gpu_bench.sub_bench_argv(part, args, tmp_path)
        parsed = tyro.cli(cls, args=argv, prog=f"bench {part}")
        assert parsed.out == str(tmp_path / f"{part}.json"), (part, module)


def test_bench_gpu_refuses_unknown_parts(tmp_path):
    with pytest.raises(ValueError, match="unknown bench gpu part"):
        gpu_bench.main(["--parts", "physics", "--out", str(tmp_path)])
