"""The procedural scene renderer against closed forms, its presets and the packaged demo sample."""

from __future__ import annotations

import json
import math
import warnings
from importlib import resources

import numpy as np
import pytest
import torch

from gen3c.cameras import Cameras, make_intrinsics
from gen3c.errors import Gen3cInputError
from gen3c.scenes import (
    DEMO_SCENE,
    DEMO_SEED,
    SCENE_PRESETS,
    Box,
    Checker,
    Gradient,
    Noise,
    Plane,
    Scene,
    Sphere,
    Stripes,
    load_demo_sample,
    make_scene,
    render,
    rotation_matrix,
    source_camera,
    value_noise,
)

H, W = 48, 64
F = 50.0
CX, CY = 32.0, 24.0  # integer principal point: pixel (32, 24) looks straight down +z


def _camera(w2c: torch.Tensor | None = None) -> Cameras:
    w2c = torch.eye(4) if w2c is None else w2c
    return Cameras(w2c[None], make_intrinsics(F, F, CX, CY), H, W)


def _ray_slopes() -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b) = ((u − cx)/f, (v − cy)/f) per pixel, float64: the ray of pixel (u, v) is t·(a, b, 1)."""
    v, u = torch.meshgrid(
        torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij"
    )
    return (u - CX) / F, (v - CY) / F


def _scene(*prims) -> Scene:
    return Scene(list(prims), ambient=1.0)


# --------------------------------------------------------------------------------------------
# Geometry against closed forms (no antialiasing: pixel centres are exact)
# --------------------------------------------------------------------------------------------


def test_fronto_parallel_plane_has_constant_depth():
    d = 3.7
    out = render(_scene(Plane((0.0, 0.0, d), (0.0, 0.0, -1.0), Checker())), _camera())
    assert out.mask.all()
    assert (out.primitive == 0).all()
    torch.testing.assert_close(out.depth, torch.full((1, H, W), d), atol=1e-5, rtol=0)


def test_plane_depth_from_a_rolled_translated_camera():
    # Rolling about the optical axis keeps the plane fronto-parallel: depth = d − camera z.
    d, c = 5.0, torch.tensor([0.3, -0.2, 0.5])
    th = math.radians(25.0)
    R = torch.tensor([[math.cos(th), -math.sin(th), 0.0], [math.sin(th), math.cos(th), 0.0], [0.0, 0.0, 1.0]])
    w2c = torch.eye(4)
    w2c[:3, :3], w2c[:3, 3] = R, -R @ c
    out = render(_scene(Plane((0.0, 0.0, d), (0.0, 0.0, -1.0), Noise())), _camera(w2c))
    torch.testing.assert_close(out.depth, torch.full((1, H, W), d - 0.5), atol=1e-5, rtol=0)


def test_floor_plane_depth_and_sky_above_the_horizon():
    h = 1.3
    scene = _scene(Plane((0.0, h, 0.0), (0.0, -1.0, 0.0), Stripes()))
    out = render(scene, _camera())
    _, b = _ray_slopes()
    below = b > 0  # rows under the horizon see the floor at z = h / b
    assert torch.equal(out.mask[0], below)
    expected = h / b[below]
    torch.testing.assert_close(out.depth[0][below].double(), expected, rtol=1e-5, atol=0)
    assert torch.isinf(out.depth[0][~below]).all() and (out.primitive[0][~below] == -1).all()
    # Misses show the sky ramp, not a texture.
    sky = torch.tensor(scene.sky)
    assert (out.rgb[0][:, ~below] >= sky.min() * 2 - 1 - 1e-5).all()


def test_sphere_depth_closed_form():
    c, r = 5.0, 1.2
    out = render(_scene(Sphere((0.0, 0.0, c), r, Checker())), _camera())
    assert out.depth[0, int(CY), int(CX)].item() == pytest.approx(c - r, abs=1e-5)
    # Ray t·(a, b, 1) meets |X − C|² = r² at t = (c − √(c² − s·(c² − r²))) / s, s = a² + b² + 1.
    a, b = _ray_slopes()
    s = a * a + b * b + 1.0
    disc = c * c - s * (c * c - r * r)
    clear = disc.abs() > 1e-2  # leave out pixels grazing the silhouette
    assert torch.equal(out.mask[0][clear], (disc >= 0)[clear])
    hit = disc > 1e-2
    expected = (c - disc[hit].sqrt()) / s[hit]
    torch.testing.assert_close(out.depth[0][hit].double(), expected, rtol=1e-5, atol=0)


def test_axis_aligned_box_front_and_side_faces():
    # Box x ∈ [0.3, 1.3], y ∈ [−0.5, 0.5], z ∈ [3.5, 4.5]: front face z = 3.5, left face x = 0.3.
    out = render(_scene(Box((0.8, 0.0, 4.0), (0.5, 0.5, 0.5), Gradient())), _camera())
    a, b = _ray_slopes()
    m = 1.0 / F  # one pixel of slope: keep away from face borders
    front = (a * 3.5 > 0.3 + m * 3.5) & (a * 3.5 < 1.3 - m * 3.5) & ((b * 3.5).abs() < 0.5 - m * 3.5)
    assert front.sum() > 50
    torch.testing.assert_close(
        out.depth[0][front].double(),
        torch.full((int(front.sum()),), 3.5, dtype=torch.float64),
        atol=1e-5,
        rtol=0,
    )
    side_t = 0.3 / a.clamp(min=1e-9)
    side = (a > 0) & (side_t > 3.5 + 0.1) & (side_t < 4.5 - 0.1) & ((b * side_t).abs() < 0.5 - 0.05)
    assert side.sum() > 10
    torch.testing.assert_close(out.depth[0][side].double(), side_t[side], rtol=1e-5, atol=0)
    # Left of the box (a < 0.3/4.5) nothing is hit.
    miss = a < 0.3 / 4.5 - m
    assert not out.mask[0][miss].any()


def test_rotated_box_edge_faces_the_camera():
    # A unit cube turned 45° about y: its nearest vertical edge sits at z = 4 − √2/2 on the axis.
    out = render(
        _scene(Box((0.0, 0.0, 4.0), (0.5, 0.5, 0.5), Checker(), rotation_matrix(yaw=45.0))), _camera()
    )
    assert out.depth[0, int(CY), int(CX)].item() == pytest.approx(4.0 - math.sqrt(0.5), abs=1e-5)
    # Along the centre row the visible face is the later of the two front slabs n·(X − C) = ½.
    a, _ = _ray_slopes()
    a = a[int(CY)]
    k = math.sqrt(0.5)
    t_faces = torch.stack([(0.5 - 4.0 * k) / (k * a - k), (0.5 - 4.0 * k) / (-k * a - k)])
    expected = t_faces.max(dim=0).values
    inside = a.abs() < 0.1
    torch.testing.assert_close(out.depth[0, int(CY)][inside].double(), expected[inside], rtol=1e-5, atol=0)


def test_finite_plane_covers_exactly_its_rectangle():
    rect = Plane(
        (0.2, -0.1, 3.0), (0.0, 0.0, -1.0), Checker(), u_axis=(1.0, 0.0, 0.0), half_extent=(0.61, 0.37)
    )
    out = render(_scene(rect), _camera())
    a, b = _ray_slopes()
    expected = ((a * 3.0 - 0.2).abs() <= 0.61) & ((b * 3.0 + 0.1).abs() <= 0.37)
    assert torch.equal(out.mask[0], expected)
    torch.testing.assert_close(
        out.depth[0][expected], torch.full((int(expected.sum()),), 3.0), atol=1e-5, rtol=0
    )


def test_a_plane_whose_u_axis_lies_along_its_normal_is_refused():
    # Its (u, v) frame degenerated to zero vectors, so the 0.2 × 0.2 rectangle below was hit by
    # every ray: a finite plane silently became an infinite one.
    with pytest.raises(Gen3cInputError, match="u_axis"):
        Plane((0.0, 0.0, 3.0), (0.0, 0.0, -1.0), Checker(), u_axis=(0.0, 0.0, 2.0), half_extent=(0.1, 0.1))
    with pytest.raises(Gen3cInputError, match="normal"):
        Plane((0.0, 0.0, 3.0), (0.0, 0.0, 0.0), Checker())
    with pytest.raises(Gen3cInputError, match="half_extent"):
        Plane((0.0, 0.0, 3.0), (0.0, 0.0, -1.0), Checker(), u_axis=(1.0, 0.0, 0.0), half_extent=(0.1, 0.0))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Gradient(length=0.0), "Gradient length"),  # was an IndexError deep in render
        (lambda: Stripes(period=0.0), "Stripes period"),
        (lambda: Checker(size=-0.5), "Checker size"),
        (lambda: Noise(scale=0.0), "Noise scale"),
        (lambda: Sphere((0.0, 0.0, 3.0), 0.0, Checker()), "Sphere radius"),
        (lambda: Box((0.0, 0.0, 3.0), (0.5, 0.0, 0.5), Checker()), "Box half_size"),
    ],
)
def test_degenerate_sizes_are_refused_in_one_line(make, match):
    with pytest.raises(Gen3cInputError, match=match):
        make()


@pytest.mark.parametrize(
    ("make", "match"),
    [  # before: a ZeroDivisionError or IndexError from inside render
        (lambda: Stripes(colors=()), r"Stripes colors \(\) must be one or more RGB triples"),
        (lambda: Noise(colors=()), r"Noise colors \(\) must be one or more RGB triples"),
        (lambda: Gradient(colors=((1.0, 0.0),)), r"Gradient colors .* must be one or more RGB triples"),
        (lambda: Checker(colors=((1.0, 0.0, 0.0),)), r"Checker colors .* must be 2 RGB triples"),
        (lambda: Checker(colors=((1.0, 0.0, 0.0), "red")), r"Checker colors .* must be 2 RGB triples"),
        # before: rgb outside [−1, 1] (ambient) or an IndexError in render (sky)
        (lambda: Scene([], ambient=1.5), r"Scene ambient 1.5 must be a share of light in \[0, 1\]"),
        (lambda: Scene([], sky=((0.5, 0.5, 0.5),)), r"Scene sky .* must be 2 RGB triples"),
        # before: errors in render ("'Sphere' object is not iterable", "'str' object has no attribute
        # 'intersect'", torch's "size mismatch") or, for a NaN light, NaN colours
        (lambda: Scene(Sphere((0.0, 0.0, 3.0), 1.0, Checker())), r"^Scene primitives is a Sphere: pass a list of them, \[primitive\]$"),
        (lambda: Scene(["sphere"]), r"^Scene primitives \['sphere'\] must be a list of Plane, Box and Sphere objects$"),
        (lambda: Scene([], light=(1.0, 0.0)), r"^Scene light \(1.0, 0.0\) must be a direction \(x, y, z\) towards the light"),
        (lambda: Scene([], light=(math.nan, -1.0, 0.0)), r"^Scene light \(nan, -1.0, 0.0\) must be a direction"),
        (lambda: Scene([], light=(0, 0, 0)), r"finite and not \(0, 0, 0\)$"),
    ],
)
def test_palettes_and_light_a_scene_cannot_render_are_refused_in_one_line(make, match):
    with pytest.raises(Gen3cInputError, match=match):
        make()


@pytest.mark.parametrize(
    ("make", "match"),
    [  # before: accepted, then infinite or NaN depth everywhere, or rgb outside [−1, 1], without a word
        (lambda: Sphere((0.0, 0.0, 3.0), math.inf, Checker()), r"^Sphere radius must be > 0 and finite, got inf"),
        (lambda: Sphere((0.0, math.nan, 3.0), 1.0, Checker()), r"^Sphere center \(0.0, nan, 3.0\) must be three finite numbers"),
        (lambda: Plane((0.0, 0.0, math.inf), (0.0, 0.0, -1.0), Checker()), r"^Plane point .* must be three finite numbers"),
        (lambda: Plane((0.0, 0.0, 3.0), (0.0, 0.0, math.nan), Checker()), r"^Plane normal .* must be three finite numbers"),
        (lambda: Box((0.0, 0.0, 3.0), (0.5, 0.5, math.inf), Checker()), r"^Box half_size .* must be three finite numbers"),
        (lambda: Checker(size=math.inf), r"^Checker size must be > 0 and finite"),
        (lambda: Checker(noise=2.0), r"^Checker noise 2.0 must be in \[0, 1\]"),
        (lambda: Checker(colors=((2.0, 0.0, 0.0), (0.0, 0.0, 0.0))), r"^Checker colors .* must be 2 RGB triples in \[0, 1\]"),
        (lambda: Scene([], sky=((0.5, 0.5, math.nan), (0.5, 0.5, 0.5))), r"^Scene sky .* must be 2 RGB triples in \[0, 1\]"),
        (lambda: Stripes(direction=(0.0, 0.0, 0.0)), r"^Stripes direction \(0.0, 0.0, 0.0\) must be .*, not \(0, 0, 0\)$"),
        # before: a TypeError, IndexError or torch size mismatch, from here or from inside render
        (lambda: Sphere((0.0, 0.0, 3.0), "1", Checker()), r"^Sphere radius must be > 0 and finite, got '1'"),
        (lambda: Sphere((0.0, 3.0), 1.0, Checker()), r"^Sphere center \(0.0, 3.0\) must be three finite numbers \(x, y, z\)$"),
        (lambda: Sphere((0.0, 0.0, 3.0), 1.0, None), r"^Sphere texture is NoneType 'None': pass a texture"),
        (lambda: Plane((0.0, 0.0, 3.0), (0.0, 1.0), Checker()), r"^Plane normal \(0.0, 1.0\) must be three finite numbers"),
        (lambda: Box((0.0, 0.0, 3.0), (0.5, 0.5, 0.5), Checker(), ((1, 0, 0), (0, 1, 0))), r"^Box rotation .* must be a 3×3 rotation matrix"),
        (lambda: Box((0.0, 0.0, 3.0), (0.5, 0.5, 0.5), Checker(), ((2, 0, 0), (0, 1, 0), (0, 0, 1))), r"^Box rotation .* must be a 3×3 rotation"),
        (lambda: Gradient(length=math.nan), r"^Gradient length nan must be a finite number"),
        (lambda: Noise(octaves=0), r"^Noise octaves 0 must be a whole number ≥ 1$"),
    ],
)
def test_primitive_and_texture_parameters_a_render_cannot_use_are_refused_in_one_line(make, match):
    with pytest.raises(Gen3cInputError, match=match) as caught:
        make()
    assert "\n" not in str(caught.value)


def test_points_and_directions_given_as_arrays_render_as_tuples_do():
    """A NumPy array or tensor for a centre, size, normal or direction (np.array([0, 0, 3])) was
    refused as not "three finite numbers (x, y, z)" by the parameter checks (they took only
    tuples and lists), though it renders as the tuple does."""
    as_tuples = _scene(
        Plane((0.0, 0.0, 6.0), (0.0, 0.0, -1.0), Stripes(direction=(1.0, 0.0, 0.0)), half_extent=(3.0, 2.0)),
        Sphere((0.0, 0.0, 3.0), 0.5, Checker()),
        Box((0.6, 0.0, 4.0), (0.2, 0.3, 0.2), Noise()),
    )
    as_arrays = _scene(
        Plane(np.array([0.0, 0.0, 6.0]), torch.tensor([0.0, 0.0, -1.0]), Stripes(direction=np.array([1.0, 0.0, 0.0])), half_extent=np.array([3.0, 2.0])),
        Sphere(torch.tensor([0.0, 0.0, 3.0]), 0.5, Checker()),
        Box(np.array([0.6, 0.0, 4.0]), np.array([0.2, 0.3, 0.2]), Noise()),
    )
    expected = render(as_tuples, _camera())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (torch.tensor(a tensor) warned "To copy construct from a tensor…")
        got = render(as_arrays, _camera())
    assert torch.equal(got.rgb, expected.rgb) and torch.equal(got.depth, expected.depth)
    with pytest.raises(Gen3cInputError, match=r"^Sphere center array\(\[ *0\., +nan, +3\.\]\) must be three finite numbers"):
        Sphere(np.array([0.0, np.nan, 3.0]), 0.5, Checker())


def test_a_scene_seed_is_any_whole_number_and_nothing_else():
    """A numpy integer (a seed from np.arange) made a TypeError in random.Random; it is its int's scene."""
    cams = source_camera(8, 16)
    assert torch.equal(render(make_scene("room", np.int64(3)), cams).rgb, render(make_scene("room", 3), cams).rgb)
    for seed in (1.5, "3", None, True, 2.0):  # True was taken as the seed 1
        with pytest.raises(Gen3cInputError, match="make_scene seed .* must be a whole number"):
            make_scene("room", seed)


def test_scene_whole_number_settings_refuse_bools_and_keep_python_ints():
    """Noise octaves and render's supersample follow gen3c's one rule for whole numbers
    (errors.is_whole_number). Before: True was taken as 1 octave, and as supersample 1."""
    assert type(Noise(octaves=np.int64(2)).octaves) is int  # (frozen: the repr showed np.int64(2))
    with pytest.raises(Gen3cInputError, match="^Noise octaves True must be a whole number ≥ 1$"):
        Noise(octaves=True)
    with pytest.raises(Gen3cInputError, match="^render supersample True must be a whole number ≥ 1"):
        render(make_scene("room", 0), source_camera(8, 16), supersample=True)


def test_nearest_primitive_wins():
    scene = _scene(
        Plane((0.0, 0.0, 6.0), (0.0, 0.0, -1.0), Noise()),
        Sphere((0.0, 0.0, 3.0), 0.5, Checker()),
    )
    out = render(scene, _camera())
    assert out.primitive[0, int(CY), int(CX)] == 1 and out.depth[0, int(CY), int(CX)].item() == pytest.approx(
        2.5, abs=1e-5
    )
    assert out.primitive[0, 0, 0] == 0 and out.depth[0, 0, 0].item() == pytest.approx(6.0, abs=1e-5)


# --------------------------------------------------------------------------------------------
# Textures and shading
# --------------------------------------------------------------------------------------------


def test_checker_and_stripes_are_exact():
    a, b = (0.9, 0.1, 0.1), (0.1, 0.1, 0.9)
    p = torch.tensor([[0.1, 0.1, 0.0], [0.6, 0.1, 0.0], [0.6, 0.6, 0.0], [-0.1, 0.1, 0.0]])
    torch.testing.assert_close(Checker(0.5, (a, b))(p), torch.tensor([a, b, a, b]))
    cols = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    q = torch.tensor(
        [[0.05, 0.0, 0.0], [0.15, 0.0, 0.0], [0.25, 0.0, 0.0], [0.35, 0.0, 0.0], [-0.05, 0.0, 0.0]]
    )
    torch.testing.assert_close(
        Stripes(0.1, (1.0, 0.0, 0.0), cols)(q), torch.tensor([cols[0], cols[1], cols[2], cols[0], cols[2]])
    )


def test_gradient_ramp():
    g = Gradient((0.0, 1.0, 0.0), -1.0, 2.0, ((0.0, 0.0, 0.0), (1.0, 0.5, 0.0)))
    p = torch.tensor([[0.0, -5.0, 0.0], [0.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    torch.testing.assert_close(g(p), torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.25, 0.0], [1.0, 0.5, 0.0]]))


def test_value_noise_is_smooth_bounded_and_seeded():
    p = torch.rand(5000, 3, generator=torch.Generator().manual_seed(0)) * 10
    n = value_noise(p, seed=3)
    assert n.min() >= 0 and n.max() <= 1 and n.std() > 0.05
    torch.testing.assert_close(n, value_noise(p, seed=3))
    assert (n - value_noise(p, seed=4)).abs().mean() > 0.05
    # Lipschitz: a step of 1e-3 lattice units changes the value by far less than the range.
    assert (value_noise(p + 1e-3, seed=3) - n).abs().max() < 0.02


def test_shading_is_view_independent():
    # The same sphere point seen from two cameras has the same colour (Lambert, fixed light).
    scene = Scene([Sphere((0.0, 0.0, 4.0), 1.0, Noise(0.3))])
    w2c = torch.eye(4)
    w2c[0, 3] = 0.4  # camera moved to x = −0.4, so the sphere's front point lies off-centre
    cams = Cameras(torch.stack([torch.eye(4), w2c]), make_intrinsics(F, F, CX, CY), H, W)
    out = render(scene, cams)
    # Point (0, 0, 3) is pixel (32, 24) in camera 0 and (32 + 0.4·F/3, 24) in camera 1.
    u1 = CX + 0.4 * F / 3.0
    col0 = out.rgb[0, :, int(CY), int(CX)]
    lo = int(math.floor(u1))
    f = u1 - lo
    col1 = out.rgb[1, :, int(CY), lo] * (1 - f) + out.rgb[1, :, int(CY), lo + 1] * f
    torch.testing.assert_close(col0, col1, atol=0.02, rtol=0)


def test_supersampling_changes_colour_only():
    scene = make_scene("objects", seed=1)
    cams = source_camera(36, 64)
    plain, aa = render(scene, cams), render(scene, cams, supersample=3)
    assert torch.equal(plain.depth, aa.depth) and torch.equal(plain.mask, aa.mask)
    diff = (plain.rgb - aa.rgb).abs()
    assert 0 < diff.mean() < 0.1
    with pytest.raises(ValueError, match="supersample"):
        render(scene, cams, supersample=0)
    with pytest.raises(ValueError, match="supersample"):
        render(scene, cams, supersample=2.0)  # was a TypeError from torch.arange
    assert torch.equal(render(scene, cams, supersample=np.int64(3)).rgb, aa.rgb)  # a numpy whole number is one


def test_a_render_casts_at_most_max_rays_at_once_whatever_the_supersampling(monkeypatch):
    """Chunks were whole rows, at least one: a row of W·s² rays over _MAX_RAYS was cast at once
    (a large supersample, a wide frame). Now a row is split by columns; the render is the same."""
    import gen3c.scenes as scenes

    scene = make_scene("objects", seed=1)
    cams = source_camera(12, 20)
    whole = render(scene, cams, supersample=3)
    cast, counts = scenes._cast, []
    monkeypatch.setattr(scenes, "_cast", lambda scene, o, d: counts.append(len(d)) or cast(scene, o, d))
    monkeypatch.setattr(scenes, "_MAX_RAYS", 50)  # a row of 20 pixels is 180 rays at s = 3
    chunked = render(scene, cams, supersample=3)
    assert max(counts) <= 50 and sum(counts) == 12 * 20 * (1 + 9)  # every pixel: its centre ray, then its 3×3
    assert torch.equal(chunked.primitive, whole.primitive)  # (float sums may differ in the last bit with the chunk's size)
    torch.testing.assert_close(chunked.depth, whole.depth, atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(chunked.rgb, whole.rgb, atol=1e-5, rtol=0)
    with pytest.raises(Gen3cInputError, match=r"^render supersample 8 casts 64 rays per pixel: pass at most 7$"):
        render(scene, cams, supersample=8)


# --------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENE_PRESETS))
def test_preset_scenes(name):
    cams = source_camera(36, 64)
    out = render(make_scene(name, seed=0), cams)
    assert out.rgb.shape == (1, 3, 36, 64) and out.depth.shape == out.mask.shape == (1, 36, 64)
    assert out.rgb.min() >= -1 and out.rgb.max() <= 1
    hits = out.depth[out.mask]
    assert hits.min() > 1.2 and torch.quantile(hits, 0.9) < 12
    assert out.mask.float().mean() > (0.8 if name == "street" else 0.999)
    assert len(out.primitive.unique()) >= 5  # several primitives in view
    assert out.rgb.std() > 0.2  # colourful, not flat
    # Same seed, same scene; another seed, another scene.
    torch.testing.assert_close(render(make_scene(name, seed=0), cams).rgb, out.rgb, atol=0, rtol=0)
    assert not torch.equal(render(make_scene(name, seed=1), cams).rgb, out.rgb)


def test_render_batches_cameras():
    from gen3c.trajectories import preset_trajectory

    src = source_camera(36, 64)
    cams = preset_trajectory("left", "center_facing", 3, src.w2c[0], src.K[0], 36, 64)
    out = render(make_scene("room", 0), cams)
    assert out.rgb.shape == (3, 3, 36, 64)
    # Frame 0 of a preset is the source camera.
    torch.testing.assert_close(out.rgb[:1], render(make_scene("room", 0), src).rgb)
    assert not torch.equal(out.rgb[2], out.rgb[0])


def test_cameras_in_float64_render_in_float32_as_cameras_store_them():
    """render computes in float32 whatever dtype the cameras came in (Cameras stores float32)."""
    src = source_camera(18, 32)
    double = Cameras(src.w2c.double(), src.K.double(), 18, 32)
    out, ref = render(make_scene("room", 0), double), render(make_scene("room", 0), src)
    assert out.rgb.dtype == out.depth.dtype == torch.float32
    assert torch.equal(out.rgb, ref.rgb) and torch.equal(out.depth, ref.depth)


def test_render_refuses_what_is_no_scene_or_cameras_in_one_line():
    # Before: AttributeError ('str' object has no attribute 'primitives'; 'Tensor' … 'height').
    cameras = source_camera(8, 12)
    with pytest.raises(Gen3cInputError, match=r"^render scene is str 'room': pass a gen3c.scenes.Scene \(make_scene\('room'\) builds that preset\)$"):
        render("room", cameras)
    with pytest.raises(Gen3cInputError, match=r"^render cameras is a torch tensor of shape \(1, 4, 4\): pass gen3c.cameras.Cameras\(w2c, K, height, width\)$"):
        render(make_scene("room"), cameras.w2c)


def test_unknown_scene_is_a_user_error():
    with pytest.raises(Gen3cInputError, match="unknown scene 'castle'"):
        make_scene("castle")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    scene, cams = make_scene("room", 0), source_camera(72, 128)
    cpu, gpu = render(scene, cams), render(scene, cams.to("cuda"))
    assert gpu.rgb.is_cuda
    torch.testing.assert_close(gpu.depth.cpu(), cpu.depth, rtol=1e-4, atol=1e-4)
    assert (gpu.rgb.cpu() - cpu.rgb).abs().gt(1e-3).float().mean() < 1e-3


# --------------------------------------------------------------------------------------------
# Demo sample
# --------------------------------------------------------------------------------------------


def test_demo_sample_loads_and_matches_its_scene():
    image, depth, K = load_demo_sample()
    _, h, w = image.shape
    assert image.dtype == depth.dtype == K.dtype == torch.float32
    assert depth.shape == (h, w) and K.shape == (3, 3)
    assert image.min() >= -1 and image.max() <= 1
    assert torch.isfinite(depth).all() and depth.min() > 1.0
    meta = json.loads((resources.files("gen3c") / "assets" / "demo_camera.json").read_text())
    assert (meta["height"], meta["width"]) == (h, w)
    assert meta["scene"] == DEMO_SCENE and meta["seed"] == DEMO_SEED
    # The assets are what scripts/make_demo_sample.py renders from the current code.
    cam = Cameras(torch.eye(4)[None], K, h, w)
    scene = make_scene(DEMO_SCENE, DEMO_SEED)
    rows = slice(h // 2 - 8, h // 2 + 8)  # a band is enough and keeps the test fast
    band_K = K.clone()
    band_K[1, 2] -= rows.start
    crop = Cameras(cam.w2c, band_K, 16, w)
    fresh = render(scene, crop, supersample=meta["supersample"])
    torch.testing.assert_close(fresh.depth[0], depth[rows], rtol=1e-3, atol=0)
    assert (fresh.rgb[0] - image[:, rows]).abs().max() < 3 / 127.5
