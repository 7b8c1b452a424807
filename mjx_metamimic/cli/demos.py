"""``mjx-metamimic demos``: record scripted demonstrations into a dataset directory."""

import time

import tyro
from rich.console import Console

from mjx_metamimic.demos import (
    PREVIEW_FILE,
    DemoDatasetError,
    RecordOptions,
    check_destination,
    record_dataset,
)


def main(argv: list[str]) -> int:
    """Records the dataset described by ``argv``; returns the exit status.

    Returns:
      0 when written, 1 when the destination may not be written, 2 on invalid options.
    """
    options = tyro.cli(RecordOptions, args=argv, prog="mjx-metamimic demos")
    console = Console()
    bad = options.problems()
    if bad:
        console.print(f"[red]invalid options: need {'; '.join(bad)}[/]")
        return 2
    try:
        check_destination(options.out, options.overwrite)
    except DemoDatasetError as e:
        console.print(f"[red]{e}[/]")
        return 1
    start = time.perf_counter()
    manifest = record_dataset(options, console)
    seconds = time.perf_counter() - start
    summary = manifest["summary"]
    console.print(
        f"wrote {options.num} demos to {options.out}: success rate "
        f"{summary['success_rate']:.1%} ({summary['successes']}/{summary['attempts']}), mean "
        f"length {summary['mean_length']:.1f} steps, stable stack at step "
        f"{summary['mean_steps_to_stack']:.1f} on average; {options.num / seconds:.2f} demos/s "
        f"({seconds:.0f} s with compilation)"
    )
    if options.preview:
        console.print(f"preview: {options.out / PREVIEW_FILE}")
    return 0
