"""Errors a command reports in one line (no traceback) beside bad input's ``ValueError``."""


class TrainingDiverged(RuntimeError):
    """A learner's gradients stayed NaN or infinite for ``run.max_nonfinite_updates`` steps."""
