"""Ray-primitive intersection and surface normals, in each geom's local frame.

Rays are ``o + t * d`` with ``o`` the ray origin and ``d`` the (not necessarily unit)
direction, both in the geom's frame. Vectors are tuples of three broadcastable arrays so
that per-geom scalars (origins, sizes) broadcast against per-sample arrays without
materialising (geoms x samples) tensors. Every function is elementwise: it works for any
common broadcast shape, and under ``vmap``/``jit`` on any device.

Sizes follow MuJoCo's ``geom_size``: plane (half x, half y, -) with 0 meaning infinite,
sphere (r, -, -), capsule and cylinder (r, half length, -), ellipsoid and box (three
half extents / radii). Only the entry point of a ray into a solid counts, as with
MuJoCo's back-face culling.

Performance note (XLA:CPU): divisions and square roots appear only as single-use
reciprocals (``x * (1 / y)``): XLA refuses to fuse an "expensive" op that has several
users and materialises it in a separate pass over memory instead.
"""

import jax
import jax.numpy as jnp

from mjx_metamimic.render.scene import BOX, CAPSULE, CYLINDER, ELLIPSOID, PLANE, SPHERE

Vec = tuple[jax.Array, jax.Array, jax.Array]


def dot(a: Vec, b: Vec) -> jax.Array:
    """Componentwise dot product of two broadcastable vectors."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _entry(b, c, dd, inv_dd):
    """Smaller root of ``dd t^2 + 2 b t + c = 0`` (``inv_dd = 1 / dd``), and whether real
    roots exist."""
    disc = b * b - dd * c
    root = -b - jnp.sqrt(jnp.maximum(disc, 0.0))
    return root * inv_dd, disc >= 0.0


def _plane(o, d, size):
    t = -o[2] * (1.0 / d[2])
    x = o[0] + t * d[0]
    y = o[1] + t * d[1]
    hit = (o[2] > 0.0) & (d[2] < 0.0)  # front side only
    hit &= (size[0] <= 0.0) | (jnp.abs(x) <= size[0])
    hit &= (size[1] <= 0.0) | (jnp.abs(y) <= size[1])
    return t, hit


def _sphere(o, d, size, dd, inv_dd):
    return _entry(dot(o, d), dot(o, o) - size[0] * size[0], dd, inv_dd)


def _ellipsoid(o, d, size):
    inv = tuple(1.0 / s for s in size)
    os = tuple(oi * si for oi, si in zip(o, inv, strict=True))
    ds = tuple(di * si for di, si in zip(d, inv, strict=True))
    dd = dot(ds, ds)
    return _entry(dot(os, ds), dot(os, os) - 1.0, dd, 1.0 / dd)


def _round_side(o, d, radius, half):
    """Entry through the side of the cylinder of ``radius`` between z = +-half."""
    a = d[0] * d[0] + d[1] * d[1]
    b = o[0] * d[0] + o[1] * d[1]
    c = o[0] * o[0] + o[1] * o[1] - radius * radius
    t, real = _entry(b, c, a, 1.0 / a)
    z = o[2] + t * d[2]
    return t, real & (jnp.abs(z) <= half), (b, c)


def _capsule(o, d, size, dd, inv_dd):
    radius, half = size[0], size[1]
    t_side, side, (b, c) = _round_side(o, d, radius, half)
    t = jnp.where(side, t_side, jnp.inf)
    for end in (half, -half):  # the hemispherical caps, as whole spheres
        oz = o[2] - end
        t_cap, cap = _entry(b + oz * d[2], c + oz * oz, dd, inv_dd)
        t = jnp.where(cap & (t_cap < t), t_cap, t)
    return t, t < jnp.inf


def _cylinder(o, d, size):
    radius, half = size[0], size[1]
    t_side, side, _ = _round_side(o, d, radius, half)
    z_cap = jnp.where(o[2] >= 0.0, half, -half)  # the flat cap facing the ray origin
    t_cap = (z_cap - o[2]) * (1.0 / d[2])
    x = o[0] + t_cap * d[0]
    y = o[1] + t_cap * d[1]
    cap = (jnp.abs(o[2]) > half) & (x * x + y * y <= radius * radius)
    t = jnp.minimum(jnp.where(side, t_side, jnp.inf), jnp.where(cap, t_cap, jnp.inf))
    return t, t < jnp.inf


def _box(o, d, size):
    near = far = None
    for oi, di, si in zip(o, d, size, strict=True):
        inv = 1.0 / di
        t1 = (-si - oi) * inv
        t2 = (si - oi) * inv
        lo, hi = jnp.minimum(t1, t2), jnp.maximum(t1, t2)
        near = lo if near is None else jnp.maximum(near, lo)
        far = hi if far is None else jnp.minimum(far, hi)
    return near, near <= far


def ray_hit(kind: int, o: Vec, d: Vec, size: Vec, dd, inv_dd) -> tuple[jax.Array, jax.Array]:
    """First intersection of rays with one geom, in the geom's frame.

    Args:
      kind: MuJoCo geom type (static).
      o: ray origin in the geom frame.
      d: ray direction in the geom frame.
      size: the geom's ``geom_size``.
      dd: ``|d|^2`` (rotations preserve it, so callers compute it once per ray).
      inv_dd: ``1 / dd``.

    Returns:
      ``(t, hit)``: the ray parameter of the entry point and whether the ray enters the
      geom at all (``t`` is meaningless where ``hit`` is False, and may be negative:
      callers clip it to their ``[t_min, t_max]``).
    """
    if kind == PLANE:
        return _plane(o, d, size)
    if kind == SPHERE:
        return _sphere(o, d, size, dd, inv_dd)
    if kind == ELLIPSOID:
        return _ellipsoid(o, d, size)
    if kind == CAPSULE:
        return _capsule(o, d, size, dd, inv_dd)
    if kind == CYLINDER:
        return _cylinder(o, d, size)
    if kind == BOX:
        return _box(o, d, size)
    raise ValueError(f"unsupported geom type {kind}")


def local_normal(kind: int, p: Vec, size: Vec, inv_size: Vec) -> Vec:
    """Outward unit surface normal at a point ``p`` on the geom, in its frame.

    ``inv_size`` is ``1 / size``: scaling by it instead of normalising keeps the shading
    pass free of divisions and square roots (XLA materialises such "expensive" values
    separately, once per use, which splits the fused per-sample pass). Points come from
    quantised ray parameters, so these normals are unit up to ~1e-4.
    """
    zero = jnp.zeros_like(p[0])
    if kind == PLANE:
        return zero, zero, zero + 1.0
    if kind == SPHERE:
        return tuple(pi * inv_size[0] for pi in p)
    if kind == ELLIPSOID:
        n = tuple(pi * si * si for pi, si in zip(p, inv_size, strict=True))
        inv_len = jax.lax.rsqrt(jnp.maximum(dot(n, n), 1e-20))
        return tuple(c * inv_len for c in n)
    if kind == CAPSULE:
        axial = p[2] - jnp.clip(p[2], -size[1], size[1])
        return p[0] * inv_size[0], p[1] * inv_size[0], axial * inv_size[0]
    if kind == CYLINDER:
        radial = p[0] * p[0] + p[1] * p[1]
        on_cap = p[2] * p[2] * size[0] * size[0] >= size[1] * size[1] * radial
        return (
            jnp.where(on_cap, 0.0, p[0] * inv_size[0]),
            jnp.where(on_cap, 0.0, p[1] * inv_size[0]),
            jnp.where(on_cap, jnp.sign(p[2]), 0.0),
        )
    if kind == BOX:
        q = tuple(jnp.abs(pi) * si for pi, si in zip(p, inv_size, strict=True))
        on_x = (q[0] >= q[1]) & (q[0] >= q[2])
        on_y = ~on_x & (q[1] >= q[2])
        on_z = ~on_x & ~on_y
        return tuple(
            jnp.where(face, jnp.sign(pi), 0.0)
            for face, pi in zip((on_x, on_y, on_z), p, strict=True)
        )
    raise ValueError(f"unsupported geom type {kind}")
