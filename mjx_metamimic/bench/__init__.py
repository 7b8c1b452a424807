"""Benchmarks, one module each (``mjx-metamimic bench <what>``): each reports speed against a
baseline measured in the same run and writes a JSON file (see docs/benchmarks.md)."""
