"""Learning-curve plots of a run's ``metrics.csv``."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

CURVES = {
    "train/actor/imitation_reward": "imitation reward (per step)",
    "train/imitation/joints_error": "arm joint error (rad)",
    "train/actor/drifted": "drifted episodes (share of steps)",
    "train/env/stacked": "stacked (share of steps)",
    "train/imitation/critic_loss": "imitation critic loss",
    "train/task/critic_loss": "task critic loss",
    "train/task/q_mean": "task critic value (batch mean)",
    "train/task_actor/env/stacked": "task actors: stacked (share of steps)",
    "train/task/bc_share": "task batch: going on to a stack",
    "train/task/bc_rms": "task actor: RMS from its regression targets",
    "train/task_actor/env/grasped": "task actors: holding a block (share of steps)",
}
EVAL_CURVES = {
    "eval/agent/ended_stacked": "eval: demos ended stacked",
    "eval/agent/task_success": "eval: task policy stacks (fresh layouts)",
    "eval/agent/task_grasped": "eval: task policy holds a block (fresh layouts)",
}


def learning_curves(
    columns: dict[str, np.ndarray], path: Path, eval_columns: dict[str, np.ndarray] | None = None
) -> Path | None:
    """Plots the logged ``CURVES``, and the evaluations' ``EVAL_CURVES``, against env steps
    into ``path`` (PNG).

    Args:
      columns: training metric name -> values per logged row, with an ``env_steps`` column.
      path: the PNG to write.
      eval_columns: the same for the evaluation log (periodic and final evaluations).

    Returns:
      ``path``, or None when nothing plottable was logged yet.
    """
    panels = [
        (source, name, title)
        for source, curves in ((columns, CURVES), (eval_columns or {}, EVAL_CURVES))
        for name, title in curves.items()
        if "env_steps" in source and name in source and np.isfinite(source[name]).any()
    ]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8), squeeze=False)
    for ax, (source, name, title) in zip(axes[0], panels, strict=True):
        keep = np.isfinite(source[name])
        ax.plot(
            source["env_steps"][keep], source[name][keep], marker="o" if keep.sum() < 3 else None
        )
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("env steps", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
