"""Checks of the training mesh on 4 forced host devices, run as a script in its own process
(``tests/test_sharding.py``): the device count is fixed when JAX starts.

  python tests/mesh_checks.py {equivalence|checkpoints} DEMOS_DIR OUT_DIR

1. ``features`` and a tiny pixel config: the chunk on 4 devices (``shard_map``) equals the
   same 4-way split computed on one device (``vmap`` with the axis name), state and
   metrics, after several chunks with learning; the learners stay identical on every device.
2. Checkpoints move: a 4-device run's checkpoint resumes on 1 device and a 1-device run's
   on 4, to the same state, and both go on training; and ``bench scaling`` runs.
"""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
)

import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from mjx_metamimic import configs  # noqa: E402
from mjx_metamimic.bench import scaling_bench  # noqa: E402
from mjx_metamimic.training import TrainConfig, Trainer, build, load_banks, sharding  # noqa: E402
from mjx_metamimic.training.config import DemoSpec  # noqa: E402
from mjx_metamimic.training.run_dir import create_run_dir, save_config  # noqa: E402
from mjx_metamimic.training.system import DATA_AXIS  # noqa: E402

DEVICES = 4
CHUNKS = 8  # learning starts in the second chunk (20 steps per env row), 2 updates a chunk


def tiny(name: str, demos: Path, out_dir: Path, devices: int, **overrides) -> TrainConfig:
    """Config ``name`` on the test demos at tiny sizes, on ``devices`` devices."""
    base = configs.load(TrainConfig, name)
    spec = DemoSpec(path=demos, num=40, image_size=16, settle_steps=10)
    base = dataclasses.replace(base, demos=spec, image_size=16 if base.image_size else 0)
    settings = {
        "actors": {"num_envs": 8},
        "learner": {"batch_size": 16, "updates_per_chunk": 2},
        "replay": {"capacity": 2000, "min_size": 160},
        "run": {"out_dir": str(out_dir), "video_demos": 0, "compilation_cache": False},
        "mesh": {"devices": devices},
        **overrides,
    }
    return configs.from_dict(TrainConfig, settings, base=base)


def split_to_whole(per_device):
    """A state computed as ``vmap`` over the axis (leading axis D on every leaf) -> the
    mesh's layout: per-env leaves joined along the env axis, replicated ones taken once."""

    def join(spec, subtree):
        if spec == P():
            return jax.tree.map(lambda x: x[0], subtree)
        return jax.tree.map(lambda x: x.reshape((x.shape[0] * x.shape[1], *x.shape[2:])), subtree)

    specs = sharding.state_specs()
    return jax.tree.map(join, specs, per_device, is_leaf=lambda x: isinstance(x, P))


def assert_close(actual, expected, what: str, atol: float = 1e-4) -> None:
    """Every leaf of ``actual`` equals ``expected``'s (floats to ``atol`` relative)."""
    for (path, a), b in zip(
        jax.tree_util.tree_flatten_with_path(actual)[0], jax.tree.leaves(expected), strict=True
    ):
        a, b = np.asarray(a), np.asarray(b)
        name = f"{what}{jax.tree_util.keystr(path)}"
        assert a.shape == b.shape, f"{name}: shape {a.shape} != {b.shape}"
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=atol, atol=atol, err_msg=name)
        elif a.dtype == np.uint8:  # frames: rendered from float poses, rounded
            np.testing.assert_allclose(a, b, atol=1 if atol else 0, rtol=0, err_msg=name)
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)


def check_equivalence(config: TrainConfig) -> None:
    """4 devices vs the same split on one device, over ``CHUNKS`` chunks."""
    start = time.time()
    algo = build(config, DEVICES)
    bank = load_banks(config)["train"]
    init, chunk = sharding.sharded_fns(algo, sharding.make_mesh(jax.devices()))
    on_one = jax.jit(jax.vmap(algo.train_chunk, (0, None), axis_name=DATA_AXIS))
    key = jax.random.PRNGKey(3)
    state = init(key, bank)
    reference = jax.jit(jax.vmap(algo.init, (None, None), axis_name=DATA_AXIS, axis_size=DEVICES))(
        key, bank
    )
    for _ in range(CHUNKS):
        state, metrics = chunk(state, bank)
        reference, reference_metrics = on_one(reference, bank)
    assert int(state.updates) == (CHUNKS - 1) * 2, int(state.updates)
    assert int(state.env_steps) == CHUNKS * 8 * config.actors.steps_per_chunk
    # qacc_warmstart: the C solver's warm start, used only as its initial guess.
    ignore = lambda s: s.replace(
        env_state=s.env_state.replace(
            pipeline_state=s.env_state.pipeline_state.replace(qacc_warmstart=None)
        )
    )
    assert_close(ignore(state), ignore(split_to_whole(reference)), config.name)
    assert_close(metrics, jax.tree.map(lambda x: x[0], reference_metrics), "metrics")
    for leaf in jax.tree.leaves(state.learners):
        copies = [np.asarray(shard.data) for shard in leaf.addressable_shards]
        assert len(copies) == DEVICES and all(np.array_equal(copies[0], c) for c in copies)
    print(
        f"{config.name}: 4 devices == the 4-way split on one device ({time.time() - start:.0f} s)"
    )


def run_and_save(config: TrainConfig, run_dir: Path):
    """Three chunks in ``run_dir``, checkpointed; returns the trainer and the final state."""
    trainer = Trainer(config, run_dir)
    state = trainer.initial_state(resume=False)
    for _ in range(3):
        state, _ = trainer.chunk(state, trainer.banks["train"])
    trainer.save(state)
    return jax.device_get(state)


def check_checkpoints_move(demos: Path, out: Path) -> None:
    """4 devices -> 1 and 1 -> 4: the restored state is the saved one and trains on."""
    for saved_on, resumed_on in ((DEVICES, 1), (1, DEVICES)):
        run_dir = create_run_dir(out / f"from-{saved_on}")
        save_config(tiny("features", demos, out, saved_on), run_dir)
        saved = run_and_save(tiny("features", demos, out, saved_on), run_dir)
        trainer = Trainer(tiny("features", demos, out, resumed_on), run_dir)
        state = trainer.initial_state(resume=True)
        assert_close(jax.device_get(state), saved, f"{saved_on}->{resumed_on}", atol=0)
        state, metrics = trainer.chunk(state, trainer.banks["train"])
        assert int(state.updates) == int(saved.updates) + 2
        assert np.isfinite(float(metrics["train/imitation/critic_loss"]))
        print(f"checkpoint: {saved_on} device(s) -> {resumed_on} device(s)")


def check_scaling_bench(out: Path) -> None:
    """``bench scaling`` at tiny sizes: a row per device count, ratios against 1 device."""
    path = out / "scaling.json"
    scaling_bench.main(["--devices", "1", "4", "--num-envs", "8", "--replay-capacity", "400",
                        "--seconds", "0.1", "--rounds", "1", "--out", str(path)])  # fmt: skip
    rows = json.loads(path.read_text())["rows"]
    assert [row["devices"] for row in rows] == [1, 4] and rows[0]["env_steps_ratio"] == 1.0
    assert all(row["updates_per_s"] > 0 and row["num_envs"] == 8 for row in rows)
    print("bench scaling: 1 and 4 devices")


def main(which: str, demos: Path, out: Path) -> None:
    """Runs the ``which`` checks; an AssertionError fails the calling test."""
    assert len(jax.devices()) == DEVICES, jax.devices()
    if which == "equivalence":
        check_equivalence(tiny("features", demos, out, DEVICES))
        # No norm layer: a conv bias in front of one has no gradient, and Adam scales the
        # float noise standing in for it to full steps, which differ between any two
        # summation orders.
        pixels = {"network": {"inputs": "pixels", "torso": "tiny", "norm": "none",
                              "torso_hidden": [16], "head_hidden": [16]}}  # fmt: skip
        learner = {"batch_size": 16, "updates_per_chunk": 2, **pixels}
        check_equivalence(tiny("cpu", demos, out, DEVICES, learner=learner))
    else:
        # Both directions build the same two programs: compile them once.
        jax.config.update("jax_compilation_cache_dir", str(out / "jax-cache"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        check_checkpoints_move(demos, out)
        check_scaling_bench(out)
    print("mesh checks passed")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
