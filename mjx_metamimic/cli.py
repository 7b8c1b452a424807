"""The ``mjx-metamimic`` console script: one entry point, one subcommand per job.

Each subcommand lives in its own module and parses its own arguments (tyro over a
frozen dataclass), so ``mjx-metamimic <command> --help`` documents every field.
Modules are imported lazily so that the default XLA flags are set before JAX loads.
"""

import importlib
import sys

import mjx_metamimic  # noqa: F401  (sets default XLA flags before anything imports jax)

# command -> ("module:function", one-line help). The function takes the remaining argv.
COMMANDS: dict[str, tuple[str, str]] = {
    "rollout": (
        "mjx_metamimic.envs.rollout:main",
        "step the stacking env with a random or zero policy",
    ),
    "render": ("mjx_metamimic.render.cli:main", "render what the agent sees to a PNG or video"),
    "demos": ("mjx_metamimic.demos.cli:main", "generate a demonstration dataset"),
    "train": ("mjx_metamimic.train:main", "train MetaMimic from a named config (--config cpu)"),
    "eval": ("mjx_metamimic.eval_cli:main", "evaluate a run on held-out demos (--run RUN_DIR)"),
    "bench": ("mjx_metamimic.bench:main", "benchmarks: env, render, learner, demos"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "usage: mjx-metamimic <command> [options]\n\ncommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatches ``argv[0]`` to its subcommand; prints usage on ``-h`` or an unknown name."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"mjx-metamimic: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name = COMMANDS[name][0].split(":")
    result = getattr(importlib.import_module(module_name), func_name)(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
