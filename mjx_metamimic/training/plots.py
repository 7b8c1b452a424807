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
}


def learning_curves(columns: dict[str, np.ndarray], path: Path) -> Path | None:
    """Plots the logged ``CURVES`` against env steps into ``path`` (PNG).

    Args:
      columns: metric name -> values per logged row, with an ``env_steps`` column.
      path: the PNG to write.

    Returns:
      ``path``, or None when nothing plottable was logged yet.
    """
    shown = [name for name in CURVES if name in columns and np.isfinite(columns[name]).any()]
    if "env_steps" not in columns or not shown:
        return None
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 2.8), squeeze=False)
    steps = columns["env_steps"]
    for ax, name in zip(axes[0], shown, strict=True):
        keep = np.isfinite(columns[name])
        ax.plot(steps[keep], columns[name][keep])
        ax.set_title(CURVES[name], fontsize=9)
        ax.set_xlabel("env steps", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
