"""Host-side metric logging: a CSV file and TensorBoard event files in the run directory."""

import csv
from pathlib import Path

import numpy as np
from tensorboardX import SummaryWriter


class MetricsLog:
    """Appends one row of scalar metrics per call to ``metrics.csv`` and TensorBoard.

    Args:
      run_dir: the run directory; files are appended to when resuming.
    """

    def __init__(self, run_dir: Path):
        self.path = run_dir / "metrics.csv"
        self.tensorboard = SummaryWriter(str(run_dir / "tensorboard"))
        self.columns: list[str] | None = None
        if self.path.exists():
            with self.path.open() as f:
                self.columns = next(csv.reader(f), None)

    def write(self, step: int, metrics: dict) -> dict[str, float]:
        """Logs ``metrics`` (scalars or 0-d arrays) at env step ``step``; returns them as floats."""
        row = {"env_steps": float(step), **{k: float(np.asarray(v)) for k, v in metrics.items()}}
        if self.columns is None:
            self.columns = list(row)
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(self.columns)
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row.get(c, "") for c in self.columns])
        for name, value in row.items():
            if name != "env_steps":
                self.tensorboard.add_scalar(name, value, step)
        self.tensorboard.flush()
        return row

    def read(self) -> dict[str, np.ndarray]:
        """All logged rows as columns (for plots)."""
        if not self.path.exists():
            return {}
        with self.path.open() as f:
            rows = list(csv.DictReader(f))
        return {c: np.array([float(r[c]) if r[c] else np.nan for r in rows]) for c in rows[0]}

    def close(self) -> None:
        self.tensorboard.close()
