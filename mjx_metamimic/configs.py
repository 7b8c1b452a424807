"""Named run configs: TOML files in train/ loaded into frozen dataclasses.

A TOML table maps onto a dataclass field of dataclass type (``[learner.imitation]`` ->
``TrainConfig.learner.imitation``); arrays become tuples. Unknown keys are errors that
name the file and the key. Every field can then be overridden on the command line.
"""

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from mjx_metamimic.resources import data_dir


class ConfigError(ValueError):
    """A run config file or override that does not fit its dataclass."""


def config_names(folder: str = "") -> list[str]:
    """Names of the shipped TOML files in train/``folder`` (default: the run configs)."""
    return sorted(p.stem for p in (data_dir("train") / folder).glob("*.toml"))


def config_path(name: str, folder: str = "", what: str = "config") -> Path:
    """Path of the named TOML file in train/``folder``, or of ``name`` itself when it is a
    .toml file; ``what`` names the kind of file in errors."""
    path = Path(name)
    if path.suffix == ".toml":
        if not path.is_file():
            raise ConfigError(f"{what} file {path} does not exist")
        return path
    path = data_dir("train") / folder / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(f"unknown {what} {name!r}; available: {config_names(folder)}")
    return path


def _dataclass_type(tp: Any) -> type | None:
    """The dataclass inside ``tp`` (also ``X | None``), or None."""
    if dataclasses.is_dataclass(tp):
        return tp
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        found = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)]
        return found[0] if found else None
    return None


def from_dict(cls: type, values: dict, where: str = "", base: Any = None) -> Any:
    """Builds dataclass ``cls`` from nested ``values`` over ``base`` (default: ``cls()``).

    A nested table overrides only its own keys of the enclosing default's value (e.g.
    ``[learner.imitation]`` keeps the imitation learner's goal conditioning and support).

    Raises:
      ConfigError: naming the dotted key that is unknown or has the wrong form.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {[where + k for k in unknown]}; valid keys here: {sorted(fields)}"
        )
    base = cls() if base is None else base
    kwargs = {}
    for name, value in values.items():
        sub = _dataclass_type(hints[name])
        if sub is not None and isinstance(value, dict):
            current = getattr(base, name)
            sub_base = current if dataclasses.is_dataclass(current) else None
            kwargs[name] = from_dict(sub, value, f"{where}{name}.", sub_base)
        elif isinstance(value, dict):
            raise ConfigError(f"{where}{name} is not a table in this config")
        elif hints[name] is Path:
            kwargs[name] = Path(value)
        else:
            kwargs[name] = tuple(value) if isinstance(value, list) else value
    try:
        return dataclasses.replace(base, **kwargs)
    except (TypeError, ValueError) as error:
        table = where.rstrip(".") or "top level"
        raise ConfigError(f"invalid value in [{table}]: {error}") from error


def load(cls: type, name: str) -> Any:
    """Loads the named config (or a .toml path) into dataclass ``cls``."""
    path = config_path(name)
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error
    try:
        return from_dict(cls, values)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error


def to_dict(config: Any) -> dict:
    """A JSON-ready nested dict of a (frozen) config dataclass."""
    return dataclasses.asdict(config)
