"""Default XLA flags: added for jaxlib versions that know them, never over the user's."""

import os
import subprocess
import sys

from mjx_metamimic import _xla


def _flags_after_import(env_flags: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if env_flags is not None:
        env["XLA_FLAGS"] = env_flags
    code = "import mjx_metamimic, os; print(os.environ.get('XLA_FLAGS', ''))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def test_default_flag_added_for_this_jaxlib():
    version = _xla._jaxlib_version()
    flags = _flags_after_import(None)
    if version is not None and version <= (0, 10):
        assert "--xla_cpu_use_fusion_emitters=false" in flags
    else:
        assert "fusion_emitters" not in flags


def test_user_flags_win():
    flags = _flags_after_import("--xla_cpu_use_fusion_emitters=true --xla_dump_to=/tmp/x")
    assert flags.count("xla_cpu_use_fusion_emitters") == 1
    assert "--xla_cpu_use_fusion_emitters=true" in flags and "--xla_dump_to=/tmp/x" in flags


def test_flags_only_for_jaxlib_versions_that_know_them():
    flag = "--xla_cpu_use_fusion_emitters=false"
    assert _xla.with_default_flags("", (0, 10)) == flag
    assert _xla.with_default_flags("--a=1", (0, 10)) == f"--a=1 {flag}"
    assert _xla.with_default_flags("", (0, 11)) == ""  # jaxlib 0.11 aborts on this flag
    assert _xla.with_default_flags("", None) == ""
