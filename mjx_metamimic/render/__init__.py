"""JAX-native batched ray-cast renderer for MuJoCo primitives (see ``Renderer``)."""

from mjx_metamimic.render.renderer import Frame, Renderer
from mjx_metamimic.render.scene import UnsupportedSceneError

__all__ = ["Frame", "Renderer", "UnsupportedSceneError"]
