"""The batched ray-cast renderer: MJX state -> rgb / depth / segmentation images.

Pipeline of one frame (all jittable, vmappable, device-agnostic):

1. geom frames: the camera expressed in every geom's frame (one small einsum);
2. broad phase (only for geom types with more geoms than ``max_geoms_per_tile``): every
   tile of samples gets a fixed-size candidate list from projected bounding spheres;
3. narrow phase, chunk by chunk of tiles (``lax.map``): each sample's closest hit (depth
   and geom id packed in one int32 key) in one fused elementwise chain over the slots;
4. shading, chunk by chunk again: look up the hit geom, its normal and material, light
   it, and pack the colour in one int32 per sample.

The loops bound the memory per step and, more importantly on XLA:CPU, make each
per-sample chain run once: XLA re-fuses cheap elementwise producers into every consumer,
so without the loop boundaries the whole ray pass would be recomputed for every table
lookup and every colour channel (measured 5-10x slower).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from mjx_metamimic.render import culling, shading, trace
from mjx_metamimic.render.camera import RayGrid, camera_id
from mjx_metamimic.render.intersect import local_normal
from mjx_metamimic.render.scene import DEFAULT_GEOM_RGBA, PLANE, SUPPORTED_TYPES, SceneTables

_SHADOW_BIAS = 1e-3  # shadow-ray origins move this far (m) off the surface, along the normal


class Frame(NamedTuple):
    """One rendered image (add leading batch axes under ``vmap``)."""

    rgb: jax.Array
    """(H, W, 3) uint8 colour."""
    depth: jax.Array
    """(H, W) float32 distance from the camera along each pixel's ray (m); the far
    clipping distance where no geom is hit."""
    segmentation: jax.Array
    """(H, W) int32 MuJoCo geom id, -1 for background."""


class Renderer:
    """Ray-casts MuJoCo primitives (plane, sphere, capsule, ellipsoid, cylinder, box).

    Static structure (which geoms are drawn and their types, materials, light types, the
    camera and the sample grid) is fixed at construction from ``mj_model``. Per frame,
    ``render`` reads poses from ``mjx.Data`` and sizes, colours, camera fovy and light
    colours/positions from ``mjx.Model``, so those may be randomised.

    Matches MuJoCo's default visualisation: geom groups 0-2 drawn, rgba alpha 0 hidden,
    headlight plus model lights with OpenGL's fixed-function lighting, black background.
    Not modelled: textures, reflections, transparency (alpha < 1 draws opaque), fog,
    skyboxes, orthographic and sensor-size cameras.
    """

    def __init__(
        self,
        mj_model: mujoco.MjModel,
        height: int,
        width: int,
        camera: str | int = "front",
        *,
        shadows: bool = False,
        supersample: int = 1,
        tile_size: int = 16,
        max_geoms_per_tile: int = 16,
        chunk_samples: int = 4096,
    ):
        """Builds the static tables.

        Args:
          mj_model: the MuJoCo model.
          height: image rows.
          width: image columns.
          camera: camera name or id.
          shadows: cast hard shadows from lights with ``castshadow``.
          supersample: samples per pixel along each axis (anti-aliasing); colours are
            averaged, depth and segmentation are traced at pixel centres.
          tile_size: tile edge in samples (broad-phase granularity).
          max_geoms_per_tile: geoms of one type tested per tile; types with more geoms
            get per-tile candidate lists (planes are always all tested).
          chunk_samples: samples per chunk of the narrow phase (memory bound per step).

        Raises:
          UnsupportedSceneError: a drawn geom has an unsupported type (the message names
            it), or a light cannot be modelled.
          ValueError: bad camera or options.
        """
        if min(height, width, supersample, tile_size, max_geoms_per_tile, chunk_samples) < 1:
            raise ValueError("sizes and counts must be positive")
        self.height, self.width = height, width
        self.camera = camera_id(mj_model, camera)
        self.scene = SceneTables.from_model(mj_model)
        self.shadows = shadows
        self.specular = shading.any_specular(self.scene, mj_model)
        self.supersample = supersample
        self.groups = tuple(
            trace.SlotGroup(
                kind=kind,
                ids=ids,
                slots=len(ids) if kind == PLANE else min(len(ids), max_geoms_per_tile),
            )
            for kind, ids in self.scene.drawn_by_type.items()
        )
        self.grid = _make_grid(height, width, supersample, tile_size, chunk_samples)
        # Depth and segmentation are traced at pixel centres (a second, cheaper pass when
        # supersampling; the colour samples surround the centre but miss it).
        self.centre_grid = self.grid
        if supersample > 1:
            self.centre_grid = _make_grid(height, width, 1, tile_size, chunk_samples)
        self._id_bits = max(1, int(self.scene.ngeom).bit_length())  # codes 1..ngeom, 0 = none
        self._mat_geoms = np.flatnonzero(self.scene.mat_id >= 0)
        surface_static = np.stack([self.scene.specular, self.scene.shininess, self.scene.emission])
        self._material = np.concatenate([np.zeros((1, 3)), surface_static.T]).astype(np.float32)
        self._geom_type = np.concatenate([[-1], self.scene.geom_type]).astype(np.int32)

    def render(self, mjx_model, mjx_data, geom_rgba: jax.Array | None = None) -> Frame:
        """Renders rgb, depth and segmentation of one state.

        Args:
          mjx_model: the ``mjx.Model``.
          mjx_data: an ``mjx.Data`` after forward kinematics (``geom_xpos``,
            ``geom_xmat``, ``cam_xpos``, ``cam_xmat``, ``xpos``, ``xmat``).
          geom_rgba: optional (ngeom, 4) colours replacing ``mjx_model.geom_rgba`` (e.g.
            per-episode block colours); alpha 0 hides a geom, and a geom with a material
            and the default rgba (0.5, 0.5, 0.5, 1) shows its material's, as in MuJoCo.

        Returns:
          The frame; pure and jittable, vmappable over data and ``geom_rgba``.
        """
        view = self._view(mjx_model, mjx_data, geom_rgba)
        key = self._trace(view, mjx_model, mjx_data, self.grid)
        rgb = self._to_rgb(self._shade_all(view, key, self.grid))
        if self.centre_grid is not self.grid:
            key = self._trace(view, mjx_model, mjx_data, self.centre_grid)
        geom, t = trace.decode(self.centre_grid.to_image(key), self._id_bits)  # (H, W)
        x, y = (self.centre_grid.to_image(jnp.asarray(a)) for a in self.centre_grid.ndc)
        ray_length = jnp.sqrt((x * view.tan_x) ** 2 + (y * view.tan_y) ** 2 + 1.0)
        depth = jnp.where(geom >= 0, t * ray_length, self.scene.zfar).astype(jnp.float32)
        return Frame(rgb=rgb, depth=depth, segmentation=geom)

    def render_rgb(self, mjx_model, mjx_data, geom_rgba: jax.Array | None = None) -> jax.Array:
        """Renders only the colour image (the cheap path used in training).

        Args:
          mjx_model: the ``mjx.Model``.
          mjx_data: an ``mjx.Data`` after forward kinematics.
          geom_rgba: optional (ngeom, 4) colours replacing the model's.

        Returns:
          (H, W, 3) uint8; pure and jittable, vmappable over data and ``geom_rgba``.
        """
        view = self._view(mjx_model, mjx_data, geom_rgba)
        key = self._trace(view, mjx_model, mjx_data, self.grid)
        return self._to_rgb(self._shade_all(view, key, self.grid))

    def _to_rgb(self, packed: jax.Array) -> jax.Array:
        """(chunks, tiles, samples) packed int32 -> (H, W, 3) uint8, averaging supersamples."""
        image = self.grid.to_image(packed)
        channels = jnp.stack([(image >> (8 * c)) & 0xFF for c in range(3)], axis=-1)
        s = self.supersample
        if s == 1:
            return channels.astype(jnp.uint8)
        blocks = channels.reshape(self.height, s, self.width, s, 3).astype(jnp.float32)
        return jnp.round(blocks.mean(axis=(1, 3))).astype(jnp.uint8)

    def _view(self, model, data, geom_rgba) -> "_View":
        """Per-frame quantities shared by tracing and shading."""
        cam_pos = data.cam_xpos[self.camera]  # (3,)
        cam_mat = data.cam_xmat[self.camera]  # (3, 3)
        tan_y = jnp.tan(jnp.deg2rad(model.cam_fovy[self.camera]) / 2)
        rgba = model.geom_rgba if geom_rgba is None else jnp.asarray(geom_rgba, jnp.float32)
        if self._mat_geoms.size:  # MuJoCo: a geom with the default rgba shows its material's
            own = rgba[self._mat_geoms]  # (m, 4)
            default = jnp.all(own == jnp.asarray(DEFAULT_GEOM_RGBA, jnp.float32), axis=1)
            material = model.mat_rgba[self.scene.mat_id[self._mat_geoms]]
            rgba = rgba.at[self._mat_geoms].set(jnp.where(default[:, None], material, own))
        frames = trace.geom_frames(
            data.geom_xpos, data.geom_xmat, cam_pos, cam_mat, model.geom_size, rgba[:, 3]
        )
        # Row 0 = background: rgb, specular, shininess, emission.
        surface = jnp.concatenate([jnp.zeros((1, 3)), rgba[:, :3]])
        surface = jnp.concatenate([surface, jnp.asarray(self._material)], axis=1)  # (ngeom+1, 6)
        return _View(
            cam_pos=cam_pos,
            cam_mat=cam_mat,
            tan_x=tan_y * self.width / self.height,
            tan_y=tan_y,
            frames=frames,
            surface=surface,
            lights=shading.camera_lights(self.scene, model, data, cam_pos, cam_mat),
        )

    def tile_load(self, mjx_model, mjx_data) -> dict[str, jax.Array]:
        """Most geoms of each culled type that overlap a single tile in this state.

        Where it exceeds ``max_geoms_per_tile`` the farthest candidates are dropped, which
        is wrong only if they are visible; use it to size ``max_geoms_per_tile``.

        Returns:
          Geom type name -> int32 scalar, for the types with candidate lists.
        """
        view = self._view(mjx_model, mjx_data, None)
        load = {}
        for group, centre, radius, bounds in self._spheres(view, mjx_model, mjx_data, self.grid):
            overlap = culling.tile_overlaps(centre, radius, bounds, self.scene.znear)
            load[SUPPORTED_TYPES[group.kind]] = jnp.max(jnp.sum(overlap, axis=1))
        return load

    def _spheres(self, view, model, data, grid: RayGrid):
        """Yields ``(group, centre (n, 3), radius (n,), tile bounds (tiles, 4))`` for every
        culled geom type, in the camera frame."""
        scale = jnp.stack([view.tan_x, view.tan_x, view.tan_y, view.tan_y])
        bounds = jnp.asarray(grid.tile_bounds) * scale  # (tiles, 4)
        for group in self.groups:
            if group.culled:
                centre = (data.geom_xpos[group.ids] - view.cam_pos) @ view.cam_mat  # (n, 3)
                radius = model.geom_rbound[group.ids]
                yield group, centre, radius, bounds

    def _trace(self, view, model, data, grid: RayGrid) -> jax.Array:
        """Closest-hit keys of every sample: (chunks, tiles per chunk, samples per tile)."""
        candidates = {}
        for group, centre, radius, bounds in self._spheres(view, model, data, grid):
            index, live = culling.tile_candidates(
                centre, radius, bounds, self.scene.znear, group.slots
            )
            shape = (grid.num_chunks, grid.tiles_per_chunk, group.slots)
            candidates[group.kind] = (index.reshape(shape), live.reshape(shape))

        def chunk(xs):
            x, y, cands = xs  # (tiles, samples) ndc; per culled type (tiles, K) candidates
            u, v = x * view.tan_x, y * view.tan_y
            return trace.closest_hits(
                self.groups,
                view.frames,
                cands,
                u,
                v,
                self.scene.znear,
                self.scene.zfar,
                self._id_bits,
            )

        x, y = (jnp.asarray(a) for a in grid.ndc)
        return jax.lax.map(chunk, (x, y, candidates))

    def _shade_all(self, view, key: jax.Array, grid: RayGrid) -> jax.Array:
        """Packed colours (r | g << 8 | b << 16) of every sample, same layout as ``key``."""

        def chunk(xs):
            key, x, y = xs
            rgb = self._shade(key, x * view.tan_x, y * view.tan_y, view)
            return rgb[0] | (rgb[1] << 8) | (rgb[2] << 16)

        x, y = (jnp.asarray(a) for a in grid.ndc)
        return jax.lax.map(chunk, (key, x, y))

    def _shade(self, key, u, v, view: "_View"):
        """Colours of one chunk's samples: (tiles, samples) int32 per channel, 0-255."""
        frames, lights = view.frames, view.lights
        geom, t = trace.decode(key, self._id_bits)
        row = geom + 1  # 0 = background
        t = jnp.where(geom >= 0, t, 0.0)
        ray = (u, v, -jnp.ones_like(u))
        point = tuple(t * c for c in ray)  # camera frame
        g = jnp.maximum(geom, 0)
        rot = frames.rot[g]  # (tiles, samples, 3, 3) camera -> geom
        origin = frames.origin[g]
        size, inv_size = frames.size[g], frames.inv_size[g]
        local = tuple(
            origin[..., i] + t * (rot[..., i, 0] * u + rot[..., i, 1] * v - rot[..., i, 2])
            for i in range(3)
        )
        sizes = (size[..., 0], size[..., 1], size[..., 2])
        inv_sizes = (inv_size[..., 0], inv_size[..., 1], inv_size[..., 2])
        kind = jnp.asarray(self._geom_type)[row]
        n_local = None
        for group in self.groups:
            n = local_normal(group.kind, local, sizes, inv_sizes)
            if n_local is None:
                n_local = n
            else:
                n_local = tuple(
                    jnp.where(kind == group.kind, a, b) for a, b in zip(n, n_local, strict=True)
                )
        if n_local is None:  # nothing drawable: every sample is background
            return tuple(jnp.zeros(key.shape, jnp.int32) for _ in range(3))
        normal = tuple(  # geom frame -> camera frame: rot^T
            rot[..., 0, j] * n_local[0] + rot[..., 1, j] * n_local[1] + rot[..., 2, j] * n_local[2]
            for j in range(3)
        )
        table = view.surface[row]  # (tiles, samples, 6)
        rgb = (table[..., 0], table[..., 1], table[..., 2])
        material = (table[..., 3], table[..., 4], table[..., 5])
        lit = {}
        if self.shadows:
            start = tuple(p + _SHADOW_BIAS * n for p, n in zip(point, normal, strict=True))
            for i, light in enumerate(lights):
                if light.castshadow:
                    to_light, distance = light.toward(start)
                    lit[i] = ~trace.occluded(self.groups, frames, start, to_light, distance)
        colour = shading.shade(normal, point, rgb, material, lights, self.specular, lit)
        hit = geom >= 0
        return tuple(jnp.where(hit, jnp.round(c * 255.0), 0.0).astype(jnp.int32) for c in colour)


class _View(NamedTuple):
    """Per-frame camera, geom and light quantities."""

    cam_pos: jax.Array  # (3,)
    cam_mat: jax.Array  # (3, 3)
    tan_x: jax.Array  # tan of half the horizontal field of view
    tan_y: jax.Array  # tan of half the vertical field of view
    frames: trace.GeomFrames
    surface: jax.Array  # (ngeom + 1, 6) rgb, specular, shininess, emission; row 0 background
    lights: tuple[shading.CameraLight, ...]


def _make_grid(height, width, supersample, tile, chunk_samples) -> RayGrid:
    rows, cols = height * supersample, width * supersample
    num_tiles = -(-rows // tile) * -(-cols // tile)
    samples = num_tiles * tile * tile
    # At least two chunks: a loop boundary keeps XLA from re-fusing the ray pass.
    num_chunks = min(num_tiles, max(2, -(-samples // chunk_samples)))
    return RayGrid(height, width, supersample, tile, num_chunks)
