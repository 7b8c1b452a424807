"""``mjx-metamimic bench perception``: can a conv torso place the blocks of a layout it has
not seen? A supervised probe, apart from RL.

A pixel torso (``networks.config.PRESETS``, the encoder's own ``ResNetTorso`` and its dense
layer) is trained with a plain regression from one frame to the two blocks' positions, on
every step of a demo dataset's training split; its error is then measured on that split,
on the dataset's validation split and on demos of another seed. The RL learner's torso
sees the same frames with a far weaker signal, so what a torso cannot learn here it will
not learn there. ``--synthetic N`` adds N frames of fresh layouts (sampled as ``reset``
samples them, with fresh colours) under the training demos' own arm poses, rendered in
code with a fixed seed: whether more layouts, rather than more pixels, is what the torso
lacks. Errors are RMSE in cm beside the spread of the true positions (what predicting
their mean scores) and the share of variance explained.
"""

import dataclasses
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tyro
from rich.console import Console
from rich.table import Table

from mjx_metamimic.bench.common import write_json
from mjx_metamimic.demos import Demos, reader
from mjx_metamimic.envs.stack import FEATURES_PARTS, StackEnv, StackEnvConfig
from mjx_metamimic.networks.config import PRESETS, NormKind, PresetName
from mjx_metamimic.networks.torso import LayerNormMLP, ResNetTorso

BLOCKS = FEATURES_PARTS["block_pos"]  # both blocks' (x, y, z) in the features vector
EVAL_FRAMES = 4096  # frames of the training split scored at each report


@dataclasses.dataclass(frozen=True)
class PerceptionArgs:
    """Supervised block localisation by a pixel torso, on demos it trained on and others."""

    heldout: Path
    """Demos of a seed the training set did not use (``mjx-metamimic demos --seed ...``)."""
    demos: Path = Path("data/demos-32-settle30")
    """Demo dataset whose training split trains the probe (its validation split is scored)."""
    torso: PresetName = "tiny"
    """Conv torso preset."""
    norm: NormKind = "instance"
    """Normalisation between conv layers."""
    keypoints: int = 0
    """0 flattens the last feature map; K > 0 reads it out as K spatial-softmax keypoints."""
    synthetic: int = 0
    """Frames of fresh layouts under the training demos' arm poses, added to the training
    frames (half of each batch when > 0)."""
    steps: int = 2000
    """Adam steps of the regression."""
    batch_size: int = 128
    learning_rate: float = 3e-4
    reports: int = 4
    """Scores are measured this many times, evenly over the steps."""
    seed: int = 0
    out: str = "bench_results/perception.json"
    """Where to write the JSON results."""


class BlockRegressor(nn.Module):
    """The pixel encoder's conv torso and dense layer on one frame, then a linear map to
    the two blocks' standardised positions."""

    torso: PresetName
    norm: NormKind
    keypoints: int

    @nn.compact
    def __call__(self, frames: jax.Array) -> jax.Array:
        """(N, H, W, 3) uint8 -> (N, 6)."""
        x = frames.astype(jnp.float32) / 255.0
        x = ResNetTorso(PRESETS[self.torso], self.norm, keypoints=self.keypoints)(x)
        return nn.Dense(6)(LayerNormMLP((256,))(x))


def frames_and_positions(demos: Demos, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every valid step of ``demos`` (loaded from ``path``): frames (M, H, W, 3) uint8 and
    block positions (M, 6)."""
    frames = np.asarray(demos.frames)
    if frames.shape[2] == 0:
        raise ValueError(f"{path}: its demos have no frames (recorded with --image-size 0)")
    valid = np.arange(frames.shape[1])[None] < np.asarray(demos.lengths)[:, None]
    return frames[valid], np.asarray(demos.features)[valid][:, BLOCKS]


def synthetic_frames(
    demos: Demos, path: Path, num: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``num`` frames of fresh layouts and colours under arm poses drawn from the steps of
    ``demos`` (loaded from ``path``), with their block positions."""
    if demos.states is None:
        raise ValueError(f"{path}: its demos store no simulator states, which --synthetic needs")
    env = StackEnv(StackEnvConfig(impl="jax", image_size=demos.frames.shape[2]))
    rng = np.random.default_rng(seed)
    lengths = np.asarray(demos.lengths)
    ids = rng.integers(0, len(lengths), num)
    ts = (rng.random(num) * lengths[ids]).astype(np.int64)
    poses = jax.tree.map(lambda x: np.asarray(x)[ids, ts], demos.states)

    @jax.jit
    @jax.vmap
    def render(key, state):
        k_layout, k_colour, k_reset = jax.random.split(key, 3)
        qpos = state.qpos.at[env.ids.block_qpos].set(env.sample_layout(k_layout))
        state = state.replace(
            qpos=qpos, qvel=jnp.zeros_like(state.qvel), block_rgba=env.sample_colours(k_colour)
        )
        obs = env.reset_to(k_reset, state).obs
        return obs["pixels"], obs["features"][BLOCKS]

    keys = jax.random.split(jax.random.key(seed), num)
    parts = []
    for i in range(0, num, 256):
        rows = slice(i, i + 256)
        parts.append(render(keys[rows], jax.tree.map(lambda x, rows=rows: x[rows], poses)))
    return tuple(np.concatenate([np.asarray(p[k]) for p in parts]) for k in (0, 1))


def probe(args: PerceptionArgs, console: Console) -> dict:
    """Trains the regressor and returns the scores at each report."""
    if args.steps < args.reports or args.reports < 1 or args.batch_size < 2:
        raise ValueError("bench perception needs steps >= reports >= 1 and batch_size >= 2")
    train = reader.load(args.demos, "train")
    sets = {
        "train": frames_and_positions(train, args.demos),
        "validation": frames_and_positions(reader.load(args.demos, "validation"), args.demos),
        "heldout": frames_and_positions(reader.load(args.heldout, "all"), args.heldout),
    }
    sizes = {name: frames.shape[1:] for name, (frames, _) in sets.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"the datasets' frames differ in size: {sizes}")
    train_frames, train_positions = sets["train"]
    mean, std = train_positions.mean(0), train_positions.std(0)
    extra = None
    if args.synthetic:
        extra = synthetic_frames(train, args.demos, args.synthetic, args.seed)

    model = BlockRegressor(args.torso, args.norm, args.keypoints)
    params = model.init(jax.random.key(args.seed), train_frames[:1])
    optimizer = optax.adam(args.learning_rate)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, frames, targets):
        def loss_fn(p):
            return jnp.mean(jnp.square(model.apply(p, frames) - targets))

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    predict = jax.jit(model.apply)

    def score(frames, positions) -> dict:
        chunks = [predict(params, frames[i : i + 512]) for i in range(0, len(frames), 512)]
        error = np.concatenate([np.asarray(c) for c in chunks]) * std + mean - positions
        rmse, spread = np.sqrt(np.mean(np.square(error))), np.sqrt(np.mean(positions.var(0)))
        return {
            "rmse_cm": 100 * float(rmse),
            "spread_cm": 100 * float(spread),
            "explained": float(1 - (rmse / spread) ** 2),
        }

    rng = np.random.default_rng(args.seed)
    half = args.batch_size // 2
    reports, start = [], time.perf_counter()
    for i in range(1, args.steps + 1):
        rows = rng.integers(0, len(train_frames), args.batch_size)
        frames, targets = train_frames[rows], train_positions[rows]
        if extra is not None:
            more = rng.integers(0, len(extra[0]), half)
            frames = np.concatenate([frames[:half], extra[0][more]])
            targets = np.concatenate([targets[:half], extra[1][more]])
        params, opt_state, loss = step(params, opt_state, frames, (targets - mean) / std)
        if i % (args.steps // args.reports) == 0 or i == args.steps:
            row = {"step": i, "loss": float(loss), "seconds": time.perf_counter() - start}
            row["train"] = score(train_frames[:EVAL_FRAMES], train_positions[:EVAL_FRAMES])
            for name in ("validation", "heldout"):
                row[name] = score(*sets[name])
            reports.append(row)
            cm = {name: f"{row[name]['rmse_cm']:.2f} cm" for name in sets}
            console.print(
                f"step {i}: train {cm['train']}, validation {cm['validation']}, "
                f"held-out {cm['heldout']}"
            )
    frame_counts = {n: len(f) for n, (f, _) in sets.items()} | {"synthetic": args.synthetic}
    return {"reports": reports, "frames": frame_counts}


def main(argv: list[str] | None = None) -> int:
    """Runs ``bench perception`` and writes its JSON."""
    args = tyro.cli(PerceptionArgs, args=argv, prog="mjx-metamimic bench perception")
    console = Console()
    result = probe(args, console)
    final = result["reports"][-1]
    table = Table(title=f"bench perception: {args.torso} torso, {args.norm} norm, "
                  f"{args.keypoints} keypoints, {args.synthetic} synthetic frames")  # fmt: skip
    for column in ("split", "frames", "block RMSE (cm)", "spread (cm)", "explained"):
        table.add_column(column, justify="right")
    for name in ("train", "validation", "heldout"):
        table.add_row(
            name, str(result["frames"][name]), f"{final[name]['rmse_cm']:.2f}",
            f"{final[name]['spread_cm']:.2f}", f"{final[name]['explained']:.2f}",
        )  # fmt: skip
    console.print(table)
    payload = {"benchmark": "perception", "args": dataclasses.asdict(args), **result}
    console.print(f"results: {write_json(args.out, payload)}")
    return 0
