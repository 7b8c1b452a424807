"""What a run is built from: the env and algorithm of a config, and its demos on device."""

import dataclasses

from mjx_metamimic import demos, envs
from mjx_metamimic.training.config import DemoSpec, TrainConfig
from mjx_metamimic.training.sharding import per_device_config
from mjx_metamimic.training.system import MetaMimic


def build(config: TrainConfig, num_devices: int = 1) -> MetaMimic:
    """The env and the algorithm's pure functions for ``config``; with ``num_devices`` > 1,
    one device's share of them, to run on a mesh (``training.sharding``)."""
    env = envs.make("stack", **env_settings(config))
    return MetaMimic(per_device_config(config, num_devices), env, num_devices)


def env_settings(config: TrainConfig) -> dict:
    """The stacking env's settings for ``config`` (its observation size and camera)."""
    return {
        **dataclasses.asdict(config.env),
        "image_size": config.image_size,
        "camera": config.camera,
    }


def check_demos_match(spec: DemoSpec) -> None:
    """Raises ValueError naming each setting in which the existing dataset at ``spec.path``
    differs from ``spec`` (training on other demos than configured would be silent)."""
    manifest = demos.read_manifest(spec.path)
    generation = manifest.get("generation", {})
    recorded = {
        "num": manifest.get("num_demos"),
        "seed": generation.get("seed"),
        "image_size": (manifest.get("image_size") or [None])[0],
        "max_steps": manifest.get("max_steps"),
        "settle_steps": generation.get("settle_steps"),
    }
    differences = [
        f"demos.{name}={getattr(spec, name)} (the dataset's: {value})"
        for name, value in recorded.items()
        if value is not None and value != getattr(spec, name)
    ]
    if differences:
        raise ValueError(
            f"the demos at {spec.path} were generated with other settings than the config's "
            f"{', '.join(differences)}: set demos.path to a new directory (demos are generated "
            "there) or make the settings match"
        )


def ensure_demos(config: TrainConfig, console=None) -> None:
    """Records the configured demo dataset if it does not exist yet; checks it otherwise.

    Args:
      config: the run config (``config.demos`` says where and how).
      console: a ``rich`` console for the recording's progress bar (None: quiet).
    """
    spec = config.demos
    if (spec.path / "manifest.json").exists():
        check_demos_match(spec)
        return
    if console is not None:
        console.print(f"[bold]no demos at {spec.path}[/]: generating {spec.num} (seed {spec.seed})")
    options = demos.RecordOptions(
        out=spec.path,
        num=spec.num,
        seed=spec.seed,
        image_size=spec.image_size,
        camera=config.camera,
        max_steps=spec.max_steps,
        settle_steps=spec.settle_steps,
        env=config.env,
    )
    demos.record_dataset(options, console)


def load_banks(config: TrainConfig) -> dict[str, demos.DemoBank]:
    """The train and validation demos on device (the training demos with their privileged
    actions for D4PGfD).

    Raises:
      DemoDatasetError: the dataset was made for another scene, env config, frame size or
        camera than the run's (each difference named), or is corrupt.
      ValueError: a baseline switch needs data the dataset lacks (privileged actions for
        ``learner.demo_fraction``, per-step states for ``actors.task_reset="curriculum"``).
    """
    d4pgfd = config.demo_batch_size > 0
    # The dataset must come from this run's scene and env settings (fingerprint, frames).
    env_config = envs.StackEnvConfig(**env_settings(config))
    try:
        train = demos.load(
            config.demos.path,
            "train",
            env_config=env_config,
            max_demos=config.demos.num_train or None,
            privileged_actions=d4pgfd,
        )
    except demos.DemoDatasetError as error:
        if d4pgfd and "privileged_actions" in str(error):
            raise ValueError(f"learner.demo_fraction > 0 (D4PGfD): {error}") from error
        raise
    if config.num_task_envs and config.actors.task_reset == "curriculum" and train.states is None:
        raise ValueError(
            f"actors.task_reset='curriculum' needs per-step simulator states, which "
            f"{config.demos.path} predates: regenerate it with `mjx-metamimic demos`"
        )
    return {
        "train": demos.DemoBank.from_demos(train),
        "validation": demos.DemoBank.from_demos(
            demos.load(config.demos.path, "validation", env_config=env_config)
        ),
    }
