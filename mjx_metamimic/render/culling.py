"""Broad phase: which geoms each tile of samples can see, from projected bounding spheres.

A tile's samples lie inside the pyramid spanned by its extreme sample rays. A geom whose
bounding sphere misses that pyramid (or lies behind the near plane) cannot be hit by any
of the tile's rays, so the narrow phase only tests each tile's candidates: a fixed number
of slots per geom type (fixed shapes keep everything jittable), filled with the
overlapping geoms nearest to the camera. If more geoms overlap a tile than it has slots,
the farthest are dropped, which is only wrong where they would have been visible.
"""

import jax
import jax.numpy as jnp


def tile_overlaps(
    centre: jax.Array, radius: jax.Array, bounds: jax.Array, z_near: float
) -> jax.Array:
    """Which bounding spheres each tile's pyramid of rays may hit (conservative).

    Args:
      centre: (n, 3) bounding-sphere centres in the camera frame (camera looks along -z).
      radius: (n,) bounding-sphere radii.
      bounds: (T, 4) ``[u_min, u_max, v_min, v_max]`` of each tile's ray directions
        ``(u, v, -1)`` in the camera frame.
      z_near: near clipping distance along the camera axis.

    Returns:
      (T, n) bool.
    """
    x, y, depth = centre[:, 0], centre[:, 1], -centre[:, 2]  # (n,)
    u0, u1, v0, v1 = (bounds[:, i, None] for i in range(4))  # (T, 1)

    def inside(distance, slope):  # signed distance to a side plane through the camera
        return distance >= -radius * jnp.sqrt(1.0 + slope * slope)

    return (
        inside(x - u0 * depth, u0)
        & inside(u1 * depth - x, u1)
        & inside(y - v0 * depth, v0)
        & inside(v1 * depth - y, v1)
        & (depth + radius >= z_near)
    )


def tile_candidates(
    centre: jax.Array, radius: jax.Array, bounds: jax.Array, z_near: float, slots: int
) -> tuple[jax.Array, jax.Array]:
    """Selects, for every tile, up to ``slots`` geoms whose bounding spheres it overlaps.

    Args:
      centre, radius, bounds, z_near: as for ``tile_overlaps``.
      slots: number of candidates per tile (static, <= n).

    Returns:
      ``(index, live)``: (T, slots) int32 positions into the ``n`` geoms, nearest first,
      and (T, slots) bool, False for slots left empty.
    """
    overlap = tile_overlaps(centre, radius, bounds, z_near)  # (T, n)
    nearest = jnp.where(overlap, -centre[:, 2] - radius, jnp.inf)
    neg_near, index = jax.lax.top_k(-nearest, slots)
    return index.astype(jnp.int32), neg_near > -jnp.inf
