"""Writing frames as a video file: GIF (Pillow, via imageio) or MP4 (H.264, needs PyAV)."""

import importlib.util
from pathlib import Path

import imageio.v3 as iio
import numpy as np


def mp4_available() -> bool:
    """Whether imageio can encode MP4 here (its PyAV plugin needs the ``av`` package)."""
    return importlib.util.find_spec("av") is not None


def video_suffix() -> str:
    """``.mp4`` where it can be written, else ``.gif`` (needs only Pillow, via imageio)."""
    return ".mp4" if mp4_available() else ".gif"


def check_video_path(path: Path) -> None:
    """Raises ``ValueError`` unless ``path`` names a video format that can be written here."""
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"unknown video format {path.suffix!r} for {path}: use .gif or .mp4")
    if suffix == ".mp4" and not mp4_available():
        raise ValueError(f"cannot write {path}: MP4 needs PyAV (pip install av); use .gif")


def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    """Writes ``frames`` (T, H, W, 3) uint8 as a GIF or an MP4 (H.264), by suffix."""
    check_video_path(path)
    if path.suffix.lower() == ".gif":
        iio.imwrite(path, frames, duration=1000 / fps, loop=0)
    else:
        iio.imwrite(path, frames, plugin="pyav", codec="h264", fps=round(fps))
