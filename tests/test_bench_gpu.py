"""``bench gpu --tiny``: its parts run at smoke sizes on CPU and write their results."""

import json

import pytest
import tyro

from mjx_metamimic.bench import env_bench, gpu_bench, learner_bench, render_bench


def test_bench_gpu_tiny_runs_its_train_part(tmp_path):
    """The part this benchmark adds (its train loop at paper settings); the env, render and
    learner parts are ``bench env``/``render``/``learner`` themselves, whose options are
    checked below without spending the suite's minutes on their runs."""
    code = gpu_bench.main(["--tiny", "--parts", "train", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "gpu.json").read_text())
    parts = summary["parts"]
    assert set(parts) == {"train"}
    for result in parts.values():
        assert result["ok"], result.get("traceback")
    assert code == 0
    train = parts["train"]
    assert train["env_steps_per_s"] > 0 and train["updates_per_s"] > 0
    assert train["num_envs"] == 2 and train["image_size"] == 16
    assert "paper chunk" in (tmp_path / "gpu.md").read_text()


@pytest.mark.parametrize("tiny", [True, False])
def test_bench_gpu_passes_valid_options_to_its_sub_benches(tmp_path, tiny):
    args = gpu_bench.GpuBenchArgs(tiny=tiny)
    for part, module, cls in (
        ("env", env_bench, env_bench.EnvBenchArgs),
        ("render", render_bench, render_bench.RenderBenchArgs),
        ("learner", learner_bench, learner_bench.LearnerBenchArgs),
    ):
        argv = gpu_bench.sub_bench_argv(part, args, tmp_path)
        parsed = tyro.cli(cls, args=argv, prog=f"bench {part}")
        assert parsed.out == str(tmp_path / f"{part}.json"), (part, module)


def test_bench_gpu_refuses_unknown_parts(tmp_path):
    with pytest.raises(ValueError, match="unknown bench gpu part"):
        gpu_bench.main(["--parts", "physics", "--out", str(tmp_path)])
