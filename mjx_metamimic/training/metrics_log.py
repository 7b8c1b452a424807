"""Host-side metric logging: a CSV file and TensorBoard event files in the run directory."""

import csv
from pathlib import Path

import numpy as np
from tensorboardX import SummaryWriter


class MetricsLog:
    """Appends one row of scalar metrics per call to ``<name>.csv`` and TensorBoard.

    Every row of one log has the same metrics (e.g. one log for training, one for
    evaluation).

    Args:
      run_dir: the run directory; files are appended to when resuming (``resume_at``).
      name: the log's name (CSV file stem and TensorBoard subdirectory).
    """

    def __init__(self, run_dir: Path, name: str = "metrics"):
        self.path = run_dir / f"{name}.csv"
        self.tensorboard_dir = run_dir / "tensorboard" / name
        self.tensorboard = SummaryWriter(str(self.tensorboard_dir))
        self.columns: list[str] | None = None
        if self.path.exists():
            with self.path.open() as f:
                self.columns = next(csv.reader(f), None)

    def write(self, step: int, metrics: dict) -> dict[str, float]:
        """Logs ``metrics`` (scalars or 0-d arrays) at env step ``step``; returns the row.

        Raises:
          ValueError: the metrics differ from the ones this log started with.
        """
        row = {"env_steps": float(step), **{k: float(np.asarray(v)) for k, v in metrics.items()}}
        if self.columns is None:
            self.columns = list(row)
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(self.columns)
        if set(row) != set(self.columns):
            raise ValueError(
                f"{self.path.name}: row metrics differ from the header's: "
                f"new {sorted(set(row) - set(self.columns))}, "
                f"missing {sorted(set(self.columns) - set(row))}"
            )
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row[c] for c in self.columns])
        for name, value in row.items():
            # NaN marks an undefined metric (e.g. steps to stack with no success): CSV only.
            if name != "env_steps" and np.isfinite(value):
                self.tensorboard.add_scalar(name, value, step)
        self.tensorboard.flush()
        return row

    def resume_at(self, step: int) -> int:
        """Drops the rows logged after env step ``step`` (a run killed after its last
        checkpoint logged them; the resumed run logs those steps again), so that env steps
        stay strictly increasing. TensorBoard hides its events past ``step`` the same way.
        Returns the number of CSV rows dropped."""
        self.tensorboard.close()
        self.tensorboard = SummaryWriter(str(self.tensorboard_dir), purge_step=step + 1)
        if not self.path.exists():
            return 0
        with self.path.open(newline="") as f:
            rows = list(csv.reader(f))
        header, body = rows[:1], rows[1:]
        kept = [row for row in body if float(row[0]) <= step]
        if len(kept) < len(body):
            tmp = self.path.with_suffix(".csv.tmp")
            with tmp.open("w", newline="") as f:
                csv.writer(f).writerows(header + kept)
            tmp.replace(self.path)  # atomic: a kill now leaves the old or the new file
        return len(body) - len(kept)

    def read(self) -> dict[str, np.ndarray]:
        """All logged rows as columns (for plots)."""
        if not self.path.exists():
            return {}
        with self.path.open() as f:
            rows = list(csv.DictReader(f))
        return {c: np.array([float(r[c]) for r in rows]) for c in rows[0]}

    def close(self) -> None:
        self.tensorboard.close()
