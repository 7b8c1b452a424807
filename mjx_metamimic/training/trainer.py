"""Running a MetaMimic training run into a run directory: chunks, logs, evaluations,
checkpoints, and at the end the final evaluation, learning curves and imitation video
(``Trainer``; ``training.launch`` starts and resumes runs with it)."""

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from rich.console import Console

from mjx_metamimic.agents import nonfinite_counts
from mjx_metamimic.errors import TrainingDiverged
from mjx_metamimic.networks.heads import split_encoder
from mjx_metamimic.render.video_file import video_suffix
from mjx_metamimic.training import checkpoints, distributed
from mjx_metamimic.training.config import TrainConfig
from mjx_metamimic.training.evaluate import Evaluator
from mjx_metamimic.training.metrics_log import MetricsLog
from mjx_metamimic.training.plots import learning_curves
from mjx_metamimic.training.setup import build, load_banks
from mjx_metamimic.training.sharding import make_mesh, mesh_devices, sharded_fns
from mjx_metamimic.training.video import ImitationVideo

TOTALS_FILE = "totals.json"
ProgressFn = Callable[[int, dict[str, float]], None]
SHOWN = (
    "train/actor/imitation_reward",
    "train/imitation/joints_error",
    "train/actor/drifted",
    "train/imitation/critic_loss",
    "train/env/stacked",
    "train/task_actor/env/stacked",
)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a finished run left: its directory and the final evaluation's metrics."""

    run_dir: Path
    final_eval: dict[str, float]


@dataclasses.dataclass
class SeedRun:
    """One seed of a trainer: its config (``run.seed`` set), run directory and logs."""

    config: TrainConfig
    run_dir: Path
    log: MetricsLog
    eval_log: MetricsLog
    ckpt: ocp.CheckpointManager

    @classmethod
    def open(cls, config: TrainConfig, run_dir: Path) -> "SeedRun":
        """Opens the logs and checkpoints of ``run_dir`` (an existing run directory); a
        process other than 0 of a multi-process run keeps its files in ``process-<i>/``."""
        run_dir = Path(run_dir)
        ckpt = checkpoints.manager(run_dir)  # written by all processes together
        if not distributed.is_primary():
            run_dir = run_dir / f"process-{jax.process_index()}"
            run_dir.mkdir(exist_ok=True)
        return cls(config, run_dir, MetricsLog(run_dir), MetricsLog(run_dir, "eval"), ckpt)


class Trainer:
    """Runs training chunks, logging, evaluation and checkpoints for one run directory, or
    for several seeds of one config trained together.

    Several seeds are one jitted program: the training state gets a leading seed axis and
    the chunk is ``vmap``-ed over it (the C engine steps all seeds' envs in one batch).
    Each seed still has its own run directory (its config with ``run.seed``, logs,
    checkpoints, ``eval.json``), so ``eval`` and ``--resume`` work on each.

    With ``mesh.devices`` other than 1 (one seed only), the chunk runs on a mesh of devices
    (``training.sharding``): envs, replay rows and each batch split across them, the
    learners replicated. Its state has a one-device run's shapes, so checkpoints resume on
    any device count.

    Args:
      config: the run config.
      run_dirs: an existing run directory (``create_run_dir``) for one run with
        ``config.run.seed``, or ``{seed: run directory}`` to train those seeds together.
      console: where progress lines and messages go (None: nowhere).
      progress_fn: called with ``(env_steps, metrics)`` at every log row and evaluation
        (per seed, with ``run/seed`` in the metrics, when training several).
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dirs: Path | dict[int, Path],
        console: Console | None = None,
        progress_fn: ProgressFn | None = None,
    ):
        if config.run.video_demos < 0:
            raise ValueError(f"run.video_demos={config.run.video_demos} must be >= 0 (0: no video)")
        self.vmapped = isinstance(run_dirs, dict)
        if self.vmapped and not run_dirs:
            raise ValueError("no seeds to train")
        if not self.vmapped:
            run_dirs = {config.run.seed: run_dirs}
        self.config = config
        self.seeds = [
            SeedRun.open(seeded(config, seed), run_dir) for seed, run_dir in run_dirs.items()
        ]
        self.console = console if console is not None and distributed.is_primary() else None
        self.console = self.console or Console(quiet=True)
        self.progress_fn = progress_fn
        devices = mesh_devices(config)
        if len(devices) > 1 and self.vmapped:
            raise ValueError(
                f"mesh.devices={config.mesh.devices} with several seeds in one program: "
                "run the seeds one after another (vmap_seeds = false) or on one device"
            )
        self.algo = build(config, len(devices))
        self.banks = load_banks(config)
        chunk = self.algo.train_chunk
        self.mesh = make_mesh(devices) if len(devices) > 1 else None
        if self.mesh is not None:
            init, self.chunk = sharded_fns(self.algo, self.mesh)
            self._init = lambda key, bank: init(distributed.replicated(key, self.mesh), bank)
            # Every process holds the demos; the mesh's programs take them as one array.
            self.banks["train"] = distributed.replicated(self.banks["train"], self.mesh)
            self.console.print(
                f"mesh: {len(devices)} {devices[0].platform} devices, each with "
                f"{self.algo.config.actors.num_envs} envs, their replay rows and "
                f"{self.algo.config.learner.batch_size} transitions of every batch"
            )
        else:
            init = self.algo.init
            self._init = jax.jit(jax.vmap(init, (0, None)) if self.vmapped else init)
            self.chunk = jax.jit(
                jax.vmap(chunk, (0, None)) if self.vmapped else chunk, donate_argnums=0
            )
        self.evaluator = Evaluator(self.algo, config.run.eval_task_episodes)
        video = config.run.video_demos > 0 and self.algo.trains_imitation
        # Built now, so that a bad video size fails before training, not after it.
        self.video = ImitationVideo(self.algo, config.run.video_size) if video else None

    @property
    def run_dir(self) -> Path:
        """The (first seed's) run directory."""
        return self.seeds[0].run_dir

    def seed_state(self, state, index: int):
        """The state (or metrics, or any part of them) of seed ``index`` alone."""
        return jax.tree.map(lambda x: x[index], state) if self.vmapped else state

    def seed_learners(self, state, index: int) -> dict:
        """The learners of seed ``index``, on one device (a mesh replicates them)."""
        learners = self.seed_state(state.learners, index)
        if self.mesh is None:
            return learners
        return jax.tree.map(lambda x: x.addressable_data(0), learners)

    def counter(self, state, name: str) -> int:
        """A counter of the state (``env_steps``, ``updates``, ``chunks``): the first seed's,
        read without copying the rest of the state (all seeds count alike)."""
        value = getattr(state, name)
        return int(value[0] if self.vmapped else value)

    def initial_state(self, resume: bool):
        """A fresh state, or the latest checkpoint's when resuming.

        Both come out of jitted functions, which keeps the chunk's compilation cache to
        one entry (eagerly built arrays would compile it a second time).
        """
        keys = jnp.stack([jax.random.PRNGKey(s.config.run.seed) for s in self.seeds])
        state = self._init(keys if self.vmapped else keys[0], self.banks["train"])
        if resume:
            state = self._restore(state)
        return state

    def _restore(self, state):
        """Every seed's latest checkpoint, stacked like ``state``."""
        restored, steps = [], set()
        for i, seed in enumerate(self.seeds):
            step, seed_state = checkpoints.restore_latest(seed.ckpt, self.seed_state(state, i))
            env_steps = int(seed_state.env_steps)
            dropped = seed.log.resume_at(env_steps) + seed.eval_log.resume_at(env_steps)
            past = f"; dropped {dropped} log row(s) past it" if dropped else ""
            self.console.print(f"{seed.run_dir.name}: resumed from chunk {step}{past}")
            restored.append(seed_state)
            steps.add(step)
        if len(steps) > 1:
            raise ValueError(
                f"the seeds' latest checkpoints are at different chunks {sorted(steps)}: "
                "resume them one by one (mjx-metamimic train --resume RUN_DIR)"
            )
        if not self.vmapped:
            return restored[0]
        return jax.jit(lambda states: jax.tree.map(lambda *x: jnp.stack(x), *states))(restored)

    def _report(self, state, metrics, start: float, last: tuple[float, int]) -> tuple[float, int]:
        """Logs a metrics row per seed, prints a progress line (the seeds' mean) and calls
        ``progress_fn``; returns the (time, env steps) of this report."""
        now = time.perf_counter()
        steps = self.counter(state, "env_steps")
        rate = (steps - last[1]) / max(now - last[0], 1e-9) * len(self.seeds)
        metrics = jax.device_get({**metrics, **skipped_updates(state.learners)})
        rows = [s.log.write(steps, self.seed_state(metrics, i)) for i, s in enumerate(self.seeds)]
        mean = {k: float(np.mean([row[k] for row in rows])) for k in rows[0]}
        shown = "  ".join(f"{k.split('/')[-1]}={mean[k]:.3g}" for k in SHOWN if k in mean)
        of = f" (mean of {len(rows)} seeds)" if self.vmapped else ""
        self.console.print(
            f"[{(now - start) / 60:5.1f} min] chunk {self.counter(state, 'chunks')} "
            f"env_steps {steps} ({rate:.0f}/s) updates {int(mean['train/updates'])}  {shown}{of}"
        )
        if self.progress_fn is not None:
            timing = {"time/minutes": (now - start) / 60, "time/env_steps_per_s": rate}
            for seed, row in zip(self.seeds, rows, strict=True):
                extra = {"run/seed": seed.config.run.seed} if self.vmapped else {}
                self.progress_fn(steps, {**row, **timing, **extra})
        return now, steps

    def _check_finite(self, state) -> None:
        """Raises ``TrainingDiverged`` once a learner has skipped ``run.max_nonfinite_updates``
        gradient steps in a row (NaN or infinite gradients); its last checkpoint stays.
        Checked at every log row: skipped steps never reach the parameters, so a later
        check only costs the time of the chunks in between."""
        limit = self.config.run.max_nonfinite_updates
        for name, learner in state.learners.items():
            in_a_row = int(jnp.max(nonfinite_counts(learner)["in_a_row"]))
            if in_a_row >= limit:
                raise TrainingDiverged(
                    f"the {name} learner skipped its last {in_a_row} gradient steps in a row "
                    f"for NaN or infinite gradients (run.max_nonfinite_updates={limit}); the "
                    f"checkpoints in {self.run_dir / 'checkpoints'} hold the last saved state"
                )

    def _done(self, state, start: float) -> bool:
        """Whether a budget (minutes, env steps, updates) is spent."""
        cfg = self.config.run
        return (
            (time.perf_counter() - start) / 60 >= cfg.max_minutes
            or self.counter(state, "env_steps") >= cfg.max_env_steps
            or (cfg.max_updates > 0 and self.counter(state, "updates") >= cfg.max_updates)
        )

    def run(self, resume: bool = False) -> list[dict[str, float]]:
        """Trains until a budget is spent (Ctrl-C stops early and still checkpoints and
        evaluates); returns each seed's final evaluation metrics."""
        cfg = self.config.run
        state = self.initial_state(resume)
        self.console.print("compiling the training chunk ...")
        start = time.perf_counter()
        state, metrics = self.chunk(state, self.banks["train"])
        jax.block_until_ready(metrics)
        self.console.print(f"compiled in {time.perf_counter() - start:.0f} s")
        start = time.perf_counter()
        last = (start, self.counter(state, "env_steps"))
        try:
            while True:
                chunk = self.counter(state, "chunks")
                if chunk % cfg.log_every == 0:
                    last = self._report(state, metrics, start, last)
                    self._check_finite(state)
                if cfg.checkpoint_every and chunk % cfg.checkpoint_every == 0:
                    self.save(state)
                if cfg.eval_every and chunk % cfg.eval_every == 0:
                    self.evaluate(state)
                if distributed.agree(self._done(state, start)):
                    break
                state, metrics = self.chunk(state, self.banks["train"])
        except KeyboardInterrupt:
            self.console.print("[yellow]interrupted[/]: writing a final checkpoint")
        train_seconds = time.perf_counter() - start
        self.save(state)
        finals = self.evaluate(state)
        if cfg.eval_train_demos:
            finals = [
                {**f, **self.evaluate_on_training_demos(state, i)} for i, f in enumerate(finals)
            ]
        for i, (seed, final) in enumerate(zip(self.seeds, finals, strict=True)):
            (seed.run_dir / "eval.json").write_text(json.dumps(final, indent=2))
            write_totals(
                seed.run_dir,
                self.seed_state(state, i),
                train_seconds,
                self.config.learner.network.shared_torso,
            )
            seed.log.close()
            seed.eval_log.close()
            plot = learning_curves(
                seed.log.read(), seed.run_dir / "learning_curves.png", seed.eval_log.read()
            )
            if plot is not None:
                self.console.print(f"learning curves: {plot}")
            if self.video is not None and distributed.is_primary():
                self.write_video(self.seed_learners(state, i), seed.run_dir)
        return finals

    def save(self, state) -> None:
        """Checkpoints every seed's state in its run directory."""
        for i, seed in enumerate(self.seeds):
            seed_state = self.seed_state(state, i)
            checkpoints.save(seed.ckpt, int(seed_state.chunks), seed_state)

    def write_video(self, learners: dict, run_dir: Path) -> Path:
        """Renders the imitation policy of one seed's ``learners`` beside the first
        validation demos (``run.video_*``) into ``run_dir``."""
        cfg, bank = self.config.run, self.banks["validation"]
        num = min(cfg.video_demos, bank.num_demos)
        path = run_dir / f"imitation{video_suffix()}"
        self.console.print(f"rendering {path.name}: {num} validation demo(s), {cfg.video_size} px")
        self.video.write(learners["imitation"].actor_params, bank, path, num)
        self.console.print(f"video: {path}")
        return path

    def evaluate_on_training_demos(self, state, index: int) -> dict[str, float]:
        """Seed ``index``'s imitation policy on the first ``run.eval_train_demos`` training
        demos (``eval_train/agent/...``)."""
        bank = self.banks["train"]
        bank = bank.take(range(min(self.config.run.eval_train_demos, bank.num_demos)))
        seed = self.seeds[index]
        key = jax.random.PRNGKey(seed.config.run.seed + 2)
        learners = self.seed_learners(state, index)
        result = self.evaluator(learners, bank, key, policies=("agent",))
        return {k.replace("eval/", "eval_train/", 1): v for k, v in result.items()}

    def evaluate(self, state) -> list[dict[str, float]]:
        """Evaluates each seed's policies on the validation demos (and the zero and random
        baselines); logs the results to its ``eval.csv`` and returns them."""
        results = []
        for i, seed in enumerate(self.seeds):
            learners = self.seed_learners(state, i)
            env_steps = self.counter(state, "env_steps")
            key = jax.random.PRNGKey(seed.config.run.seed + 1)
            result = self.evaluator(learners, self.banks["validation"], key)
            seed.eval_log.write(env_steps, result)
            agent = {k.split("/")[-1]: v for k, v in result.items() if k.startswith("eval/agent/")}
            name = f"{seed.run_dir.name} " if self.vmapped else ""
            self.console.print(
                f"{name}eval @ chunk {self.counter(state, 'chunks')}: "
                + "  ".join(f"{k}={v:.3g}" for k, v in agent.items() if np.isfinite(v))
            )
            if "eval/agent/ended_stacked" in result:  # an imitation policy was evaluated
                self.console.print(against_baselines(result, self.banks["validation"].num_demos))
            if self.progress_fn is not None:
                extra = {"run/seed": seed.config.run.seed} if self.vmapped else {}
                self.progress_fn(env_steps, {**result, **extra})
            results.append(result)
        return results


def against_baselines(result: dict[str, float], num_demos: int) -> str:
    """One line: the imitation policy's held-out demos ended stacked and joint error beside
    the zero policy's and the demos' own (from an ``Evaluator`` result)."""
    get = lambda policy, name: result.get(f"eval/{policy}/{name}", float("nan"))
    stacked = lambda policy: f"{round(get(policy, 'ended_stacked') * num_demos)}/{num_demos}"
    line = f"  ended stacked: agent {stacked('agent')}"
    if "eval/zero/ended_stacked" in result:
        line += f", zero policy {stacked('zero')}"
    line += f", the demos {stacked('demos')}"
    agent, zero = get("agent", "joint_error"), get("zero", "joint_error")
    if np.isfinite(agent) and np.isfinite(zero):
        line += f"; joint error {agent:.3g} rad ({zero / agent:.1f}x below the zero policy's)"
    return line


def write_totals(run_dir: Path, state, train_seconds: float, shared_torso: bool = False) -> dict:
    """Writes ``totals.json``: the learners' network parameters (actors and critics; an
    encoder the actor shares with its critics counted once), the env steps, updates and
    chunks ``state`` has made, and the training seconds (compilation excluded) summed over
    the run's finished sessions (a resumption adds its own)."""
    path = Path(run_dir) / TOTALS_FILE
    before = json.loads(path.read_text()).get("train_seconds", 0.0) if path.exists() else 0.0
    learners = state.learners.values()
    own = (lambda actor: split_encoder(actor)[1]) if shared_torso else (lambda actor: actor)
    networks = [(own(lrn.actor_params), lrn.critic_params) for lrn in learners]
    totals = {
        "num_params": int(sum(x.size for x in jax.tree.leaves(networks))),
        "env_steps": int(state.env_steps),
        "updates": int(state.updates),
        "chunks": int(state.chunks),
        "train_seconds": round(before + train_seconds, 2),
    }
    path.write_text(json.dumps(totals, indent=2))
    return totals


def skipped_updates(learners: dict) -> dict[str, jax.Array]:
    """``train/<learner>/nonfinite_updates``: gradient steps each learner skipped so far for
    a NaN or infinite gradient."""
    return {
        f"train/{name}/nonfinite_updates": nonfinite_counts(learner)["total"]
        for name, learner in learners.items()
    }


def seeded(config: TrainConfig, seed: int) -> TrainConfig:
    """``config`` with ``run.seed`` set to ``seed``."""
    return dataclasses.replace(config, run=dataclasses.replace(config.run, seed=seed))
