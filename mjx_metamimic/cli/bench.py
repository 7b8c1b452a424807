"""``mjx-metamimic bench <what> [options]``: runs the benchmark module ``<what>`` (each
parses its own options and reports speed against a baseline measured in the same run)."""

import importlib
import sys

BENCHMARKS: dict[str, str] = {
    "env": "mjx_metamimic.bench.env_bench",
    "render": "mjx_metamimic.bench.render_bench",
    "learner": "mjx_metamimic.bench.learner_bench",
    "demos": "mjx_metamimic.bench.demos_bench",
    "train": "mjx_metamimic.bench.train_bench",
    "sweep": "mjx_metamimic.bench.sweep_bench",
    "soak": "mjx_metamimic.bench.soak_bench",
    "scaling": "mjx_metamimic.bench.scaling_bench",
    "memory": "mjx_metamimic.bench.memory_bench",
    "gpu": "mjx_metamimic.bench.gpu_bench",
    "perception": "mjx_metamimic.bench.perception_bench",
}


def main(argv: list[str]) -> int:
    """Runs the benchmark named by ``argv[0]`` with the remaining arguments."""
    if not argv or argv[0] not in BENCHMARKS:
        names = ", ".join(BENCHMARKS)
        print(f"usage: mjx-metamimic bench <{names}> [options]", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return int(importlib.import_module(BENCHMARKS[argv[0]]).main(argv[1:]) or 0)
