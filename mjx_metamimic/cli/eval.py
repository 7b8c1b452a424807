"""``mjx-metamimic eval --run RUN_DIR``: one-shot evaluation of a run's latest checkpoint.

Imitates every demo of a split (default: the held-out validation demos) and runs the
task policy on fresh layouts, for the learned policies and the zero and random
baselines in the same run; prints a table and writes ``<run>/eval-<split>.json``.
``--video PATH`` also writes the imitation policy beside the split's first demos (.mp4/.gif),
``--task-video PATH`` the task policy from those demos' layouts beside them, and
``--task-diagnostics`` measures what the task learner knows on the demos
(``training.task_diagnostics``; also written to the JSON), ``--gripper-diagnostics`` what
the imitation learner knows about the gripper (``training.gripper_diagnostics``), and
``--feature-diagnostics`` where its torso puts the blocks (``training.feature_diagnostics``).
"""

import dataclasses
import json
from pathlib import Path
from typing import Literal

import tyro
from rich.console import Console, Group
from rich.table import Table

from mjx_metamimic.render.video_file import check_video_path
from mjx_metamimic.training.evaluate import POLICIES, evaluate_run


@dataclasses.dataclass(frozen=True)
class EvalArgs:
    """Evaluate a MetaMimic run on held-out demonstrations."""

    run: Path
    """Run directory (made by ``mjx-metamimic train``)."""
    demos: Path | None = None
    """Demo dataset to imitate; default: the run's own."""
    split: Literal["train", "validation", "all"] = "validation"
    """Which demos of the dataset to imitate."""
    policy: tuple[Literal["agent", "zero", "random"], ...] = POLICIES
    """Policies to evaluate (the zero and random baselines run in the same evaluation)."""
    task_episodes: int = 16
    """Fresh layouts for the task policy."""
    seed: int = 0
    video: Path | None = None
    """Also write a video (.mp4 needs PyAV, or .gif) of the imitation policy beside demos."""
    video_demos: int = 1
    """Demos of the split (the first ones) in the video, one row each."""
    video_size: int = 128
    """Height and width (pixels, even) of the agent's and the demo's halves of the video."""
    task_video: Path | None = None
    """Also write a video of the task policy from the first ``video_demos`` demos' layouts
    beside those demos (the bar under it is full while the blocks are stacked)."""
    task_diagnostics: bool = False
    """Also measure what the task learner knows on these demos: its success started k steps
    before each demo's first stack, and its critic's value against the demos' returns."""
    gripper_diagnostics: bool = False
    """Also measure what the imitation learner knows about the gripper on these demos: does
    the actor follow the goal's finger gap, and does the critic prefer the goal's gripper
    choice, at grasps and releases and elsewhere."""
    feature_diagnostics: bool = False
    """Also measure where the pixel torso puts the grip and the blocks on these demos: the
    error of the run's feature-prediction head (``aux_features_weight`` > 0) against the
    spread of the true positions."""


def results_table(results: dict[str, float], policies: tuple[str, ...], split: str) -> Table:
    """The evaluation as a table: one row per metric, one column per policy."""
    table = Table(title=f"one-shot evaluation ({split} demos)")
    table.add_column("metric")
    for policy in policies:
        table.add_column(policy, justify="right")
    names = sorted(
        {k.split("/", 2)[2] for k in results if k.startswith("eval/agent/")}
        | {k.split("/", 2)[2] for k in results if k.startswith(f"eval/{policies[0]}/")}
    )
    for name in names:
        table.add_row(
            name, *(f"{results.get(f'eval/{p}/{name}', float('nan')):.4g}" for p in policies)
        )
    return table


def diagnostics_tables(diagnostics: dict) -> Group:
    """The task diagnostics as two tables: back-off success, and critic vs return."""
    backoff = Table(title="task policy started k steps before the demo's first stack")
    backoff.add_column("k")
    for policy in diagnostics["backoff"]:
        backoff.add_column(f"{policy}: stacked within 100 steps", justify="right")
    for k in next(iter(diagnostics["backoff"].values())):
        backoff.add_row(str(k), *(f"{v[k]:.2f}" for v in diagnostics["backoff"].values()))
    critic = Table(title="task critic along the demos (t - first stack)")
    for name in ("t - stack", "steps", "Q(o, pi(o))", "demo's return"):
        critic.add_column(name, justify="right")
    for row in diagnostics["critic"]:
        critic.add_row(
            f"[{row['from']}, {row['to']})",
            str(row["steps"]),
            f"{row['q']:.3g}",
            f"{row['return']:.3g}",
        )
    return Group(backoff, critic)


def rows_table(title: str, columns: dict[str, str], rows: list[dict]) -> Table:
    """A table of diagnostic rows: ``columns`` maps a row's keys to column titles."""
    table = Table(title=title)
    for name in columns.values():
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(*(v if isinstance(v := row[k], str) else f"{v:.3g}" for k in columns))
    return table


def gripper_table(rows: list[dict]) -> Table:
    """The gripper diagnostics: one row per group of demo steps."""
    columns = {
        "steps": "demo steps",
        "count": "count",
        "actor_agrees": "actor agrees",
        "actor_gap_sensitivity": "actor: d(command) goal shut->open",
        "critic_prefers_goal": "critic prefers goal's",
        "critic_value_gap": "Q(goal's) - Q(other)",
    }
    return rows_table(
        "imitation learner's gripper against the goal's gripper choice", columns, rows
    )


def feature_table(rows: list[dict]) -> Table:
    """The feature diagnostics: one row per frame and group of positions."""
    columns = {
        "frame": "frame",
        "positions": "positions",
        "rmse_cm": "head's RMSE (cm)",
        "spread_cm": "spread (std, cm)",
        "explained": "variance explained",
    }
    return rows_table("where the torso puts the grip and the blocks", columns, rows)


def main(argv: list[str]) -> int:
    """Runs ``mjx-metamimic eval``."""
    args = tyro.cli(EvalArgs, args=argv, prog="mjx-metamimic eval")
    console = Console()
    for path in (args.video, args.task_video):  # bad paths fail before the evaluation
        if path is not None:
            check_video_path(path)
    evaluation = evaluate_run(
        args.run,
        demos=args.demos,
        split=args.split,
        policies=args.policy,
        task_episodes=args.task_episodes,
        seed=args.seed,
        video=args.video,
        video_demos=args.video_demos,
        video_size=args.video_size,
        task_diagnostics=args.task_diagnostics,
        task_video=args.task_video,
        gripper_diagnostics=args.gripper_diagnostics,
        feature_diagnostics=args.feature_diagnostics,
        console=console,
    )
    results = evaluation.results
    console.print(results_table(results, args.policy, args.split))
    for name, value in results.items():
        if name.startswith("eval/demos/"):
            console.print(f"demos' {name.split('/')[-1]}: {value:.4g}")
    written = {"checkpoint": evaluation.checkpoint, **results}
    if evaluation.task_diagnostics is not None:
        console.print(diagnostics_tables(evaluation.task_diagnostics))
        written["task_diagnostics"] = evaluation.task_diagnostics
    if evaluation.gripper_diagnostics is not None:
        console.print(gripper_table(evaluation.gripper_diagnostics))
        written["gripper_diagnostics"] = evaluation.gripper_diagnostics
    if evaluation.feature_diagnostics is not None:
        console.print(feature_table(evaluation.feature_diagnostics))
        written["feature_diagnostics"] = evaluation.feature_diagnostics
    out = args.run / f"eval-{args.split}.json"
    out.write_text(json.dumps(written, indent=2))
    console.print(f"wrote {out}")
    for path in (args.video, args.task_video):
        if path is not None:
            console.print(f"wrote {path}")
    return 0
