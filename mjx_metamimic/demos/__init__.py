"""Demonstrations: the scripted demonstrator, the on-disk dataset and the device DemoBank.

``record_dataset(RecordOptions(...))`` records a dataset (what ``mjx-metamimic demos``
runs); ``load(path, split)`` reads one back as ``Demos`` (host numpy);
``DemoBank.from_demos(demos)`` puts them on device for ``sample``/``goal`` inside jit.

Modules: ``format`` (the ``Demos`` record and the shard layout), ``fingerprints`` (what a
dataset depends on, the split), ``writer`` (atomic writing), ``reader`` (validated
loading), ``bank`` (device-side lookups), ``generate`` (the recorder), ``record`` (recording
a dataset), ``demonstrator`` (the scripted controller), ``transitions`` (D4PGfD).
"""

from mjx_metamimic.demos.bank import DemoBank, goal, init_states, paused, sample, states_at
from mjx_metamimic.demos.demonstrator import Demonstrator, DemonstratorConfig, Phase
from mjx_metamimic.demos.fingerprints import (
    dataset_fingerprint,
    physics_config,
    scene_fingerprint,
    split_indices,
)
from mjx_metamimic.demos.format import MANIFEST, DemoDatasetError, Demos
from mjx_metamimic.demos.reader import load, read_manifest
from mjx_metamimic.demos.record import PREVIEW_FILE, RecordOptions, build_recorder, record_dataset
from mjx_metamimic.demos.writer import DatasetWriter, check_destination

__all__ = [
    "MANIFEST",
    "PREVIEW_FILE",
    "DatasetWriter",
    "DemoBank",
    "DemoDatasetError",
    "Demonstrator",
    "DemonstratorConfig",
    "Demos",
    "Phase",
    "RecordOptions",
    "build_recorder",
    "check_destination",
    "dataset_fingerprint",
    "goal",
    "init_states",
    "load",
    "paused",
    "physics_config",
    "read_manifest",
    "record_dataset",
    "sample",
    "scene_fingerprint",
    "split_indices",
    "states_at",
]
