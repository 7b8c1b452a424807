"""Lighting that mimics MuJoCo's fixed-function OpenGL pipeline (``mjr_render``).

Per light ``l`` (the headlight first, then the model's active lights), with material
ambient = diffuse = the geom's rgb (``GL_COLOR_MATERIAL``) and OpenGL's local viewer::

    colour = emission * rgb + global_ambient * rgb
             + sum_l att_l * spot_l * (ambient_l * rgb + max(n.L, 0) * diffuse_l * rgb
                                       + [n.L > 0] * max(n.H, 0)^(128 shininess)
                                         * specular_l * material_specular)

clamped to [0, 1]. ``global_ambient`` is 0.3 only when the scene has no light at all.
The headlight is a directional light shining along the camera's view direction.
Differences from OpenGL: lighting is evaluated per sample (Phong), not per vertex
(Gouraud), which only matters on curved surfaces lit by positional lights; shadows, when
enabled, are exact ray-cast hard shadows that remove a light's diffuse and specular
terms (MuJoCo uses soft shadow maps).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from mjx_metamimic.render.intersect import Vec, dot
from mjx_metamimic.render.scene import LightSpec, SceneTables


@dataclasses.dataclass(frozen=True)
class CameraLight:
    """One light at render time, in the camera frame."""

    spec: LightSpec | None
    """Static description; None for the headlight."""
    ambient: jax.Array
    """(3,) ambient rgb."""
    diffuse: jax.Array
    """(3,) diffuse rgb."""
    specular: jax.Array
    """(3,) specular rgb."""
    direction: jax.Array
    """(3,) unit direction the light shines along."""
    position: jax.Array | None = None
    """(3,) position (positional lights)."""
    attenuation: jax.Array | None = None
    """(3,) constant, linear, quadratic attenuation (positional lights)."""
    cos_cutoff: jax.Array | None = None
    """Cosine of the spot cone's half angle (spot lights)."""
    exponent: jax.Array | None = None
    """Spot exponent (spot lights)."""

    @property
    def directional(self) -> bool:
        """Whether the light has no position."""
        return self.spec is None or self.spec.directional

    @property
    def castshadow(self) -> bool:
        """Whether the light casts shadows (the headlight never does)."""
        return self.spec is not None and self.spec.castshadow

    def toward(self, point: Vec) -> tuple[Vec, jax.Array]:
        """Unit vector from ``point`` to the light, and the distance (inf if directional)."""
        if self.directional:
            return tuple(-self.direction[i] for i in range(3)), jnp.inf
        delta = tuple(self.position[i] - point[i] for i in range(3))
        distance = jnp.sqrt(dot(delta, delta))
        inv = 1.0 / jnp.maximum(distance, 1e-12)
        return tuple(c * inv for c in delta), distance

    def weight(self, to_light: Vec, distance: jax.Array) -> jax.Array | float:
        """Attenuation times spot factor."""
        if self.directional:
            return 1.0
        att = self.attenuation
        weight = 1.0 / (att[0] + distance * (att[1] + distance * att[2]))
        if self.spec.spot:
            cos_angle = -dot(to_light, tuple(self.direction[i] for i in range(3)))
            inside = cos_angle >= self.cos_cutoff
            weight = weight * jnp.where(inside, jnp.maximum(cos_angle, 0.0) ** self.exponent, 0.0)
        return weight


def camera_lights(scene: SceneTables, model, data, cam_pos, cam_mat) -> tuple[CameraLight, ...]:
    """The headlight and the model's active lights, in the camera frame.

    Args:
      scene: static tables.
      model: ``mjx.Model`` (light colours, positions, cones are read from it).
      data: ``mjx.Data`` after kinematics (body poses).
      cam_pos: (3,) camera position.
      cam_mat: (3, 3) camera orientation (columns = camera axes).
    """
    lights = []
    if scene.headlight is not None:
        ambient, diffuse, specular = (jnp.asarray(c) for c in scene.headlight)
        forward = jnp.array([0.0, 0.0, -1.0])
        lights.append(CameraLight(None, ambient, diffuse, specular, forward))
    for spec in scene.lights:
        i, body = spec.index, spec.body
        world_dir = data.xmat[body] @ model.light_dir[i]
        direction = cam_mat.T @ (world_dir / jnp.linalg.norm(world_dir))
        extra = {}
        if not spec.directional:
            world_pos = data.xpos[body] + data.xmat[body] @ model.light_pos[i]
            extra = dict(
                position=cam_mat.T @ (world_pos - cam_pos), attenuation=model.light_attenuation[i]
            )
            if spec.spot:
                extra.update(
                    cos_cutoff=jnp.cos(jnp.deg2rad(model.light_cutoff[i])),
                    exponent=model.light_exponent[i],
                )
        lights.append(
            CameraLight(
                spec,
                model.light_ambient[i],
                model.light_diffuse[i],
                model.light_specular[i],
                direction,
                **extra,
            )
        )
    return tuple(lights)


def any_specular(scene: SceneTables, model) -> bool:
    """Static check: can any light produce a specular highlight on any drawn geom."""
    light_spec = [scene.headlight[2]] if scene.headlight is not None else []
    light_spec += [model.light_specular[s.index] for s in scene.lights]
    geom_spec = scene.specular[scene.drawn] if scene.drawn.size else np.zeros(0)
    return bool(np.any(np.asarray(light_spec) > 0) and np.any(geom_spec > 0))


def shade(
    normal: Vec,
    point: Vec,
    rgb: Vec,
    material: tuple[jax.Array, jax.Array, jax.Array],
    lights: tuple[CameraLight, ...],
    specular: bool,
    lit: dict[int, jax.Array],
) -> Vec:
    """Colour of surface samples.

    Args:
      normal: unit outward normals, camera frame.
      point: surface points, camera frame (the camera is at the origin).
      rgb: surface colour channels in [0, 1].
      material: ``(specular, shininess, emission)`` per sample.
      lights: the lights (static count).
      specular: whether to evaluate specular terms (static).
      lit: light position in ``lights`` -> bool per sample, False where shadowed.

    Returns:
      rgb channels in [0, 1].
    """
    mat_specular, shininess, emission = material
    base = emission + (0.0 if lights else 0.3)
    out = [base * c for c in rgb]
    if specular:
        inv_dist = jax.lax.rsqrt(jnp.maximum(dot(point, point), 1e-20))
        view = tuple(-p * inv_dist for p in point)
    for n, light in enumerate(lights):
        to_light, distance = light.toward(point)
        weight = light.weight(to_light, distance)
        n_dot_l = dot(normal, to_light)
        diffuse = jnp.maximum(n_dot_l, 0.0)
        if n in lit:
            diffuse = jnp.where(lit[n], diffuse, 0.0)
        for c in range(3):
            out[c] = out[c] + weight * (light.ambient[c] + diffuse * light.diffuse[c]) * rgb[c]
        if specular:
            half = tuple(a + b for a, b in zip(to_light, view, strict=True))
            n_dot_h = dot(normal, half) * jax.lax.rsqrt(jnp.maximum(dot(half, half), 1e-20))
            highlight = jnp.maximum(n_dot_h, 0.0) ** (128.0 * shininess)
            front = n_dot_l > 0.0
            if n in lit:
                front &= lit[n]
            highlight = jnp.where(front, highlight, 0.0) * mat_specular * weight
            for c in range(3):
                out[c] = out[c] + highlight * light.specular[c]
    return tuple(jnp.clip(c, 0.0, 1.0) for c in out)
