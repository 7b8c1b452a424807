"""Cameras: which model camera, and the static grid of sample rays in tiles.

Conventions (MuJoCo's): a camera looks along its frame's -z axis with +y up and +x to
the right; the image's row 0 is the top. A sample's ray direction in the camera frame is
``(x * tan(fovy/2) * W/H, y * tan(fovy/2), -1)`` with ``(x, y)`` its normalised device
coordinates, so a hit at ray parameter ``t`` lies ``t`` metres in front of the camera
plane (planar depth) and ``t * |direction|`` metres from the camera.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np


def camera_id(model: mujoco.MjModel, camera: str | int) -> int:
    """Resolves ``camera`` (a name or an id) to a model camera id.

    Raises:
      ValueError: no such camera, or a camera with physical intrinsics (``sensorsize``),
        which the renderer does not model (only ``fovy``).
    """
    if isinstance(camera, str):
        cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if cam < 0:
            names = [model.camera(i).name for i in range(model.ncam)]
            raise ValueError(f"no camera named {camera!r}; the model has {names}")
    else:
        cam = int(camera)
        if not 0 <= cam < model.ncam:
            raise ValueError(f"camera id {cam} out of range [0, {model.ncam})")
    if np.any(model.cam_sensorsize[cam] > 0):
        raise ValueError(
            f"camera {model.camera(cam).name!r} uses sensorsize/focal intrinsics; the JAX "
            "renderer supports fovy cameras only"
        )
    return cam


@dataclasses.dataclass(frozen=True, eq=False)
class RayGrid:
    """Sample positions of an image, grouped in square tiles and the tiles in chunks.

    The image is sampled at ``(height * supersample, width * supersample)`` points, cut in
    ``tile x tile`` tiles (the last row and column of tiles may overhang the image; their
    extra samples are computed and dropped), and the tiles are split in ``num_chunks``
    equal chunks that the renderer processes one after the other.
    """

    height: int
    width: int
    supersample: int
    tile: int
    num_chunks: int

    @property
    def sample_shape(self) -> tuple[int, int]:
        """(rows, columns) of samples."""
        return self.height * self.supersample, self.width * self.supersample

    @property
    def tiles_yx(self) -> tuple[int, int]:
        """Number of tile rows and columns covering the samples."""
        rows, cols = self.sample_shape
        return -(-rows // self.tile), -(-cols // self.tile)

    @property
    def tiles_per_chunk(self) -> int:
        """Tiles per chunk (the chunks cover every tile, plus padding tiles)."""
        ty, tx = self.tiles_yx
        return -(-ty * tx // self.num_chunks)

    @property
    def num_tiles(self) -> int:
        """Number of tiles including the padding tiles of the last chunk."""
        return self.num_chunks * self.tiles_per_chunk

    @functools.cached_property
    def ndc(self) -> tuple[np.ndarray, np.ndarray]:
        """Normalised device coordinates of every sample.

        Returns:
          ``(x, y)``, each (num_chunks, tiles_per_chunk, tile * tile) float32: x in [-1, 1]
          left to right, y in [-1, 1] bottom to top, at sample centres.
        """
        rows, cols = self.sample_shape
        ty, tx = self.tiles_yx
        i = np.arange(ty * self.tile)
        j = np.arange(tx * self.tile)
        y = 1.0 - 2.0 * (i + 0.5) / rows  # (ty * tile,)
        x = 2.0 * (j + 0.5) / cols - 1.0  # (tx * tile,)
        yy, xx = np.meshgrid(y, x, indexing="ij")
        return self._to_tiles(xx), self._to_tiles(yy)

    @functools.cached_property
    def tile_bounds(self) -> np.ndarray:
        """(num_tiles, 4) float32 ``[x_min, x_max, y_min, y_max]`` of each tile's samples."""
        x, y = (a.reshape(self.num_tiles, -1) for a in self.ndc)
        return np.stack([x.min(1), x.max(1), y.min(1), y.max(1)], axis=1)

    def _to_tiles(self, plane: np.ndarray) -> np.ndarray:
        ty, tx = self.tiles_yx
        t = self.tile
        tiles = plane.reshape(ty, t, tx, t).transpose(0, 2, 1, 3).reshape(ty * tx, t * t)
        pad = self.num_tiles - ty * tx  # padding tiles repeat the last tile
        tiles = np.concatenate([tiles, np.repeat(tiles[-1:], pad, axis=0)])
        return tiles.reshape(self.num_chunks, self.tiles_per_chunk, t * t).astype(np.float32)

    def to_image(self, samples: jax.Array) -> jax.Array:
        """Reorders per-sample values from tile order to image order.

        Args:
          samples: (num_chunks, tiles_per_chunk, tile * tile, ...) values.

        Returns:
          (rows, columns, ...) values at the sample positions.
        """
        ty, tx = self.tiles_yx
        t = self.tile
        rows, cols = self.sample_shape
        extra = samples.shape[3:]
        tiles = samples.reshape(self.num_tiles, t * t, *extra)[: ty * tx]
        image = tiles.reshape(ty, tx, t, t, *extra)
        image = jnp.moveaxis(image, 2, 1).reshape(ty * t, tx * t, *extra)
        return image[:rows, :cols]
