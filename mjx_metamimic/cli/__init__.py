"""The ``mjx-metamimic`` console script: one entry point, one subcommand per job.

Each subcommand lives in its own module and parses its own arguments (tyro over a
frozen dataclass), so ``mjx-metamimic <command> --help`` documents every field.
Modules are imported lazily so that the default XLA flags are set before JAX loads.

Bad input (an unknown config, an impossible value, a missing or corrupt file, a directory
that is not a run) ends the command with one line naming the problem and exit code 2; a
run whose gradients stay NaN or infinite ends with one line and exit code 1.
``MJX_METAMIMIC_DEBUG=1`` shows the traceback instead. Commands cap glibc's malloc arenas
(``_malloc``) so that resident memory stays flat over long runs.
"""

import importlib
import os
import sys

import mjx_metamimic  # noqa: F401  (sets default XLA flags before anything imports jax)
from mjx_metamimic._malloc import limit_malloc_arenas
from mjx_metamimic.errors import TrainingDiverged

# command -> ("module:function", one-line help). The function takes the remaining argv.
COMMANDS: dict[str, tuple[str, str]] = {
    "rollout": (
        "mjx_metamimic.cli.rollout:main",
        "step the stacking env with a random or zero policy",
    ),
    "render": ("mjx_metamimic.cli.render:main", "render what the agent sees to a PNG or video"),
    "demos": ("mjx_metamimic.cli.demos:main", "generate a demonstration dataset"),
    "train": ("mjx_metamimic.cli.train:main", "train MetaMimic from a named config (--config cpu)"),
    "eval": ("mjx_metamimic.cli.eval:main", "evaluate a run on held-out demos (--run RUN_DIR)"),
    "sweep": ("mjx_metamimic.cli.sweep:main", "a grid of configs x seeds from a spec (fig5/6/8)"),
    "bench": ("mjx_metamimic.cli.bench:main", "speed: env, render, train...; memory; perception"),
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
    limit_malloc_arenas()  # before JAX starts its threads: flat memory over long runs
    module_name, func_name = COMMANDS[name][0].split(":")
    command = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(command(rest) or 0)
    except (ValueError, FileNotFoundError, NotADirectoryError) as error:
        if os.environ.get("MJX_METAMIMIC_DEBUG"):
            raise
        print(f"mjx-metamimic {name}: error: {error}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        if os.environ.get("MJX_METAMIMIC_DEBUG"):
            raise
        print(f"mjx-metamimic {name}: training stopped: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
