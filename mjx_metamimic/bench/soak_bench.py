"""``mjx-metamimic bench soak``: a long training run with its resident memory sampled.

Runs ``mjx-metamimic train`` in a child process for ``--minutes`` and samples, every
``--interval`` seconds, the child's resident memory (``VmRSS``) and the run directory's
size. Memory should be flat once the replay is allocated and every program compiled: the
report fits a line to the samples after ``--warmup-minutes`` and gives its slope in MiB per
hour, beside the run directory's growth over the same span (checkpoints are kept by
retention, logs grow by a row per ``log_every`` chunks).

``--probe chunks|saves|logs`` instead repeats one part of a run in this process (training
chunks, checkpoint saves, progress rows) and samples resident memory after each round:
which part a growth comes from.
"""

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np
import tyro

from mjx_metamimic.bench.common import write_json


@dataclasses.dataclass(frozen=True)
class SoakArgs:
    """Sample a training run's resident memory and run directory size over time."""

    config: str = "features"
    """Run config (a name in train/ or a .toml path)."""
    minutes: float = 60.0
    """Training minutes (``run.max_minutes``; compile time comes on top)."""
    interval: float = 60.0
    """Seconds between samples."""
    warmup_minutes: float = 10.0
    """Samples before this are left out of the slope (replay fill, compilation)."""
    out_dir: str = "runs/soak"
    """Parent directory of the soak's run directory."""
    train_args: tuple[str, ...] = ()
    """More ``mjx-metamimic train`` options, e.g. ``--train-args --run.seed 1``."""
    out: str = "bench_results/soak.json"
    """Where to write the samples and the slope."""
    probe: Literal["chunks", "saves", "logs"] | None = None
    """Repeat one part of a run in this process instead (see the module docstring)."""
    rounds: int = 8
    """Rounds of a probe (150 chunks, 5 saves or 200 progress rows each)."""


def resident_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (0 when it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def directory_mib(path: Path) -> float:
    """Total size of the files under ``path`` in MiB (0 when it does not exist)."""
    if not path.exists():
        return 0.0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def slope_per_hour(minutes: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of ``values`` against ``minutes``, per hour (0 with < 2 samples)."""
    if len(minutes) < 2:
        return 0.0
    return float(np.polyfit(minutes, values, 1)[0] * 60.0)


def probe(args: SoakArgs) -> list[float]:
    """Resident MiB after warm-up and after each round of ``args.probe``."""
    import jax

    from mjx_metamimic.training import Trainer, load_config
    from mjx_metamimic.training.run_dir import create_run_dir, save_config

    config = load_config(args.config, run={"out_dir": args.out_dir, "video_demos": 0})
    run_dir = create_run_dir(Path(args.out_dir) / f"probe-{args.probe}")
    save_config(config, run_dir)
    trainer = Trainer(config, run_dir)
    state, bank = trainer.initial_state(resume=False), trainer.banks["train"]
    for _ in range(50):
        state, metrics = trainer.chunk(state, bank)
    jax.block_until_ready(state)
    samples = [resident_mib(os.getpid())]
    for _ in range(args.rounds):
        if args.probe == "chunks":
            for _ in range(150):
                state, metrics = trainer.chunk(state, bank)
            jax.block_until_ready(state)
        elif args.probe == "saves":
            for _ in range(5):
                state = state.replace(chunks=state.chunks + 1)
                trainer.save(state)
        else:
            for _ in range(200):
                now = time.perf_counter()
                trainer._report(state, metrics, now - 1.0, (now - 2.0, 0))
        samples.append(resident_mib(os.getpid()))
        print(f"  {args.probe} round {len(samples) - 1}: rss {samples[-1]:8.1f} MiB", flush=True)
    return samples


def main(argv: list[str] | None = None) -> int:
    """Runs the soak (or a probe) and writes ``--out``."""
    args = tyro.cli(SoakArgs, args=argv)
    if args.probe is not None:
        samples = probe(args)
        write_json(args.out, {"probe": args.probe, "rss_mib": samples})
        print(f"probe {args.probe}: {samples[0]:.1f} -> {samples[-1]:.1f} MiB -> {args.out}")
        return 0
    out_dir = Path(args.out_dir)
    command = [
        sys.executable, "-c", "import sys; from mjx_metamimic.cli import main; "
        "sys.exit(main(sys.argv[1:]))", "train", "--config", args.config,
        "--run.max-minutes", str(args.minutes), "--run.out-dir", str(out_dir),
        *args.train_args,
    ]  # fmt: skip
    print("soak:", " ".join(command), flush=True)
    start = time.monotonic()
    child = subprocess.Popen(command)
    samples = []
    while child.poll() is None:
        minute = (time.monotonic() - start) / 60.0
        samples.append((minute, resident_mib(child.pid), directory_mib(out_dir)))
        print(f"  {minute:6.1f} min  rss {samples[-1][1]:8.1f} MiB  "
              f"run dir {samples[-1][2]:7.1f} MiB", flush=True)  # fmt: skip
        time.sleep(args.interval)
    minutes, rss, disk = (np.array(column) for column in zip(*samples, strict=True))
    late = minutes >= args.warmup_minutes
    result = {
        "command": command,
        "returncode": child.returncode,
        "samples": [dict(minute=m, rss_mib=r, run_dir_mib=d) for m, r, d in samples],
        "rss_slope_mib_per_hour": slope_per_hour(minutes[late], rss[late]),
        "rss_after_warmup_mib": [float(rss[late].min()), float(rss[late].max())]
        if late.any()
        else [],
        "run_dir_slope_mib_per_hour": slope_per_hour(minutes[late], disk[late]),
    }
    write_json(args.out, result)
    print(
        f"soak: exit {child.returncode}; resident memory after {args.warmup_minutes:g} min: "
        f"{result['rss_after_warmup_mib']} MiB, slope {result['rss_slope_mib_per_hour']:+.1f} "
        f"MiB/h; run dir slope {result['run_dir_slope_mib_per_hour']:+.2f} MiB/h -> {args.out}"
    )
    return child.returncode
