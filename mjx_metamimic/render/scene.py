"""What the renderer draws: static geom, material and light tables read once from an MjModel.

Everything here is numpy, computed at construction; the per-frame quantities (poses,
sizes, colours) are read from ``mjx.Model`` / ``mjx.Data`` at render time.
"""

import dataclasses
import warnings

import mujoco
import numpy as np

PLANE = int(mujoco.mjtGeom.mjGEOM_PLANE)
SPHERE = int(mujoco.mjtGeom.mjGEOM_SPHERE)
CAPSULE = int(mujoco.mjtGeom.mjGEOM_CAPSULE)
ELLIPSOID = int(mujoco.mjtGeom.mjGEOM_ELLIPSOID)
CYLINDER = int(mujoco.mjtGeom.mjGEOM_CYLINDER)
BOX = int(mujoco.mjtGeom.mjGEOM_BOX)
SUPPORTED_TYPES = {
    PLANE: "plane",
    SPHERE: "sphere",
    CAPSULE: "capsule",
    ELLIPSOID: "ellipsoid",
    CYLINDER: "cylinder",
    BOX: "box",
}

VISIBLE_GROUPS = (0, 1, 2)  # mjvOption's default geomgroup: groups 0-2 drawn, 3-5 hidden
DEFAULT_GEOM_RGBA = (0.5, 0.5, 0.5, 1.0)  # a geom with this rgba takes its material's
# Material defaults of an mjvGeom without material (mjv_initGeom).
DEFAULT_SPECULAR, DEFAULT_SHININESS, DEFAULT_EMISSION = 0.5, 0.5, 0.0
MAX_GL_LIGHTS = 8  # fixed-function OpenGL lights, the headlight included

LIGHT_SPOT = int(mujoco.mjtLightType.mjLIGHT_SPOT)
LIGHT_DIRECTIONAL = int(mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)
LIGHT_POINT = int(mujoco.mjtLightType.mjLIGHT_POINT)


class UnsupportedSceneError(ValueError):
    """The model contains something the ray-cast renderer cannot draw."""


@dataclasses.dataclass(frozen=True)
class LightSpec:
    """One model light, as OpenGL's fixed-function pipeline sees it."""

    index: int
    """MuJoCo light id."""
    body: int
    """Body the light is attached to (mode "fixed")."""
    directional: bool
    """Directional (no position, no attenuation) vs positional (spot / point)."""
    spot: bool
    """Positional light with a cone (cutoff, exponent); point lights have none."""
    castshadow: bool
    """Whether the light casts shadows when the renderer's shadows are on."""


@dataclasses.dataclass(frozen=True, eq=False)
class SceneTables:
    """Static tables of a model's drawable geoms, materials and lights."""

    ngeom: int
    """Number of geoms in the model (all of them, drawn or not)."""
    geom_type: np.ndarray
    """(ngeom,) int32 MuJoCo geom type."""
    drawn_by_type: dict[int, np.ndarray]
    """Geom type -> (n,) int32 ids of the geoms in visible groups, for each type present."""
    mat_id: np.ndarray
    """(ngeom,) int32 material id, -1 for none."""
    specular: np.ndarray
    """(ngeom,) float32 material specular."""
    shininess: np.ndarray
    """(ngeom,) float32 material shininess in [0, 1] (OpenGL exponent = 128 x this)."""
    emission: np.ndarray
    """(ngeom,) float32 material emission."""
    lights: tuple[LightSpec, ...]
    """Active model lights, in MuJoCo's order (after the headlight, at most 8 in all)."""
    headlight: np.ndarray | None
    """(3, 3) float32 rows ambient, diffuse, specular of the headlight; None if inactive."""
    znear: float
    """Near clipping distance (m), measured along the camera axis."""
    zfar: float
    """Far clipping distance (m), measured along the camera axis."""

    @property
    def drawn(self) -> np.ndarray:
        """(G,) int32 ids of all drawn geoms, sorted."""
        return np.sort(np.concatenate(list(self.drawn_by_type.values()) or [np.zeros(0, int)]))

    @classmethod
    def from_model(cls, model: mujoco.MjModel) -> "SceneTables":
        """Reads the tables from ``model``.

        Raises:
          UnsupportedSceneError: a geom in a visible group has a type the renderer cannot
            draw (mesh, hfield, sdf), or a light is an image light or tracks a body.
        """
        geom_type = np.asarray(model.geom_type, np.int32)
        visible = np.isin(model.geom_group, VISIBLE_GROUPS)
        for g in np.flatnonzero(visible):
            if geom_type[g] not in SUPPORTED_TYPES:
                raise UnsupportedSceneError(
                    f"geom {_name(model, mujoco.mjtObj.mjOBJ_GEOM, g)!r} has type "
                    f"{mujoco.mjtGeom(geom_type[g]).name}, which the JAX renderer cannot draw "
                    f"(supported: {', '.join(SUPPORTED_TYPES.values())}); move it to geom "
                    "group 3-5 to hide it"
                )
        drawn_by_type = {
            kind: np.flatnonzero(visible & (geom_type == kind)).astype(np.int32)
            for kind in SUPPORTED_TYPES
            if np.any(visible & (geom_type == kind))
        }
        mat_id = np.asarray(model.geom_matid, np.int32)
        has_mat = mat_id >= 0
        _warn_unsupported_materials(model, mat_id[visible])

        def material(values, default):
            if model.nmat == 0:
                return np.full(model.ngeom, default, np.float32)
            return np.where(has_mat, values[np.maximum(mat_id, 0)], default).astype(np.float32)

        headlight = None
        if model.vis.headlight.active:
            hl = model.vis.headlight
            headlight = np.array([hl.ambient, hl.diffuse, hl.specular], np.float32)
        return cls(
            ngeom=model.ngeom,
            geom_type=geom_type,
            drawn_by_type=drawn_by_type,
            mat_id=mat_id,
            specular=material(model.mat_specular, DEFAULT_SPECULAR),
            shininess=material(model.mat_shininess, DEFAULT_SHININESS),
            emission=material(model.mat_emission, DEFAULT_EMISSION),
            lights=_lights(model, max_lights=MAX_GL_LIGHTS - (headlight is not None)),
            headlight=headlight,
            znear=float(model.vis.map.znear * model.stat.extent),
            zfar=float(model.vis.map.zfar * model.stat.extent),
        )


def _name(model: mujoco.MjModel, obj: mujoco.mjtObj, index: int) -> str:
    return mujoco.mj_id2name(model, obj, int(index)) or f"#{int(index)}"


def _lights(model: mujoco.MjModel, max_lights: int) -> tuple[LightSpec, ...]:
    lights = []
    for i in range(model.nlight):
        if not model.light_active[i]:
            continue
        name = _name(model, mujoco.mjtObj.mjOBJ_LIGHT, i)
        kind = int(model.light_type[i])
        if kind not in (LIGHT_SPOT, LIGHT_DIRECTIONAL, LIGHT_POINT):
            raise UnsupportedSceneError(f"light {name!r}: image lights are not supported")
        fixed = model.light_mode[i] == mujoco.mjtCamLight.mjCAMLIGHT_FIXED
        if model.light_bodyid[i] != 0 and not fixed:
            raise UnsupportedSceneError(
                f"light {name!r}: only lights fixed to their body are supported "
                f"(mode {mujoco.mjtCamLight(model.light_mode[i]).name})"
            )
        lights.append(
            LightSpec(
                index=i,
                body=int(model.light_bodyid[i]),
                directional=kind == LIGHT_DIRECTIONAL,
                spot=kind == LIGHT_SPOT,
                castshadow=bool(model.light_castshadow[i]),
            )
        )
    if len(lights) > max_lights:
        warnings.warn(
            f"OpenGL draws at most {MAX_GL_LIGHTS} lights (headlight included); "
            f"ignoring {len(lights) - max_lights} of the model's lights",
            stacklevel=3,
        )
    return tuple(lights[:max_lights])


def _warn_unsupported_materials(model: mujoco.MjModel, mat_ids: np.ndarray) -> None:
    used = np.unique(mat_ids[mat_ids >= 0])
    if used.size == 0:
        return
    textured = [i for i in used if np.any(model.mat_texid[i] >= 0)]
    reflective = [i for i in used if model.mat_reflectance[i] > 0]
    for ids, what in ((textured, "textures"), (reflective, "reflections")):
        if ids:
            names = ", ".join(repr(_name(model, mujoco.mjtObj.mjOBJ_MATERIAL, i)) for i in ids)
            warnings.warn(
                f"the JAX renderer draws no {what}; material(s) {names} are drawn in "
                "their plain rgba",
                stacklevel=3,
            )
