"""Demonstrations: the scripted demonstrator, the on-disk dataset and the device DemoBank.

``load(path, split)`` reads a dataset made by ``mjx-metamimic demos``;
``DemoBank.from_demos(demos)`` puts it on device for ``sample``/``goal`` inside jit.
"""

from mjx_metamimic.demos.bank import DemoBank, goal, init_states, sample, states_at
from mjx_metamimic.demos.dataset import DemoDatasetError, Demos, load, read_manifest
from mjx_metamimic.demos.demonstrator import Demonstrator, DemonstratorConfig, Phase

__all__ = [
    "DemoBank",
    "DemoDatasetError",
    "Demonstrator",
    "DemonstratorConfig",
    "Demos",
    "Phase",
    "goal",
    "init_states",
    "load",
    "read_manifest",
    "sample",
    "states_at",
]
