"""Camera conventions against closed forms."""

import math
import re

import numpy as np
import pytest
import torch

from gen3c.cameras import (
    Cameras,
    as_float32,
    as_float64,
    camera_centers,
    check_intrinsics_fit,
    crop_intrinsics,
    focal_from_fov,
    fov_from_focal,
    gen3c_look_at,
    intrinsics_from_fov,
    intrinsics_from_nerfstudio,
    intrinsics_from_nerfstudio_fov,
    invert_pose,
    lens_distortion_shift,
    look_at,
    make_intrinsics,
    matrix_to_quaternion,
    opencv_to_opengl,
    opengl_to_opencv,
    pixel_grid,
    project_points,
    quaternion_slerp,
    quaternion_to_matrix,
    resize_crop_intrinsics,
    resize_crop_plan,
    resize_intrinsics,
    rotation_angle_degrees,
    scale_intrinsics,
    unproject_depth,
    validate_intrinsics,
    validate_poses,
)
from gen3c.errors import Gen3cInputError


def random_pose(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = q
    T[:3, 3] = torch.randn(3, generator=g, dtype=torch.float64)
    return T


def test_focal_fov_closed_form():
    # 90° over 1000 px: tan(45°) = 1, so f = 500.
    assert focal_from_fov(90.0, 1000) == pytest.approx(500.0)
    assert fov_from_focal(500.0, 1000) == pytest.approx(90.0)
    K = intrinsics_from_fov(60.0, 480, 640)
    assert K[0, 0].item() == pytest.approx(320.0 / math.tan(math.radians(30)), rel=1e-6)
    assert (K[0, 2].item(), K[1, 2].item()) == (320.0, 240.0)
    with pytest.raises(Gen3cInputError):
        focal_from_fov(180.0, 100)


def test_a_field_of_view_that_is_no_number_is_one_line():
    """Before: fov="60°", True or 1j reached a comparison (TypeError) and DepthEstimator.estimate's
    fov="abc" a ValueError of float(); numbers of other types (numpy, a 0-d tensor) still count."""
    from gen3c.depth.base import camera_for

    for fov in ("abc", "60", True, 1j, None):
        with pytest.raises(Gen3cInputError, match=r"^field of view .* is not a number: pass degrees between 0.01 and 179, e.g. 60$"):
            focal_from_fov(fov, 100)
    with pytest.raises(Gen3cInputError, match=r"^field of view 'abc' is not a number"):
        camera_for(48, 64, None, "abc")
    assert focal_from_fov(np.float32(90.0), 1000) == pytest.approx(500.0)
    assert focal_from_fov(torch.tensor(90.0), 1000) == pytest.approx(500.0)


def test_nerfstudio_intrinsics_are_the_same_rays_on_its_half_integer_pixel_grid():
    """nerfstudio casts pixel (u, v)'s ray through (u + ½, v + ½) (``get_image_coords``); gen3c
    through (u, v): gen3c's K of nerfstudio's camera has the principal point ½ px up and left."""
    fx, fy, cx, cy = 500.0, 510.0, 321.0, 239.0
    K = intrinsics_from_nerfstudio(fx, fy, cx, cy)
    u, v = torch.meshgrid(torch.arange(4, dtype=torch.float64), torch.arange(3, dtype=torch.float64), indexing="xy")
    ours = torch.stack([u, v, torch.ones_like(u)], -1) @ torch.linalg.inv(K).T
    theirs = torch.stack([(u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy, torch.ones_like(u)], -1)
    assert torch.allclose(ours, theirs, atol=1e-12)
    # A camera_path fov: vertical, over the height; 90° over 480 rows is f = 240, centred.
    K = intrinsics_from_nerfstudio_fov(90.0, 480, 640)
    assert torch.allclose(K, torch.tensor([[240.0, 0, 319.5], [0, 240, 239.5], [0, 0, 1]], dtype=torch.float64))
    with pytest.raises(Gen3cInputError, match="field of view"):
        intrinsics_from_nerfstudio_fov(0.0, 480, 640)


def test_lens_distortion_shift_is_where_the_lens_moves_the_pinholes_corner_rays():
    """A 100×100 image, f = 100, principal point at its centre (49.5, 49.5): the corner (−½, −½)
    is the ray x = y = −½, r = x² + y² = ½. Radial k moves it along itself by x·k·rⁿ (n = 1 for
    k1, 2 for k2, 4 for k4), on both axes, √2 times that in all; p1 by (2·p1·x·y, p1·(r + 2y²)) =
    (½, 1)·p1. Each in pixels (×100), the corners moving most."""
    K = make_intrinsics(100.0, 100.0, 49.5, 49.5)
    for coefficients, shift in (((0, 0, 0, 0, 0, 0), 0.0),
                                ((0.1, 0, 0, 0, 0, 0), 100 * 0.5 * 0.1 * 0.5 * 2**0.5),   # 3.54 px
                                ((-0.1, 0, 0, 0, 0, 0), 100 * 0.5 * 0.1 * 0.5 * 2**0.5),
                                ((0, 0.1, 0, 0, 0, 0), 100 * 0.5 * 0.1 * 0.25 * 2**0.5),  # 1.77 px
                                ((0, 0, 0, 1.0, 0, 0), 100 * 0.5 * 1.0 / 16 * 2**0.5),    # 4.42 px
                                ((0, 0, 0, 0, 0.01, 0), 100 * 0.01 * 1.25**0.5)):         # 1.12 px  # fmt: skip
        assert lens_distortion_shift(K, 100, 100, coefficients) == pytest.approx(shift, rel=1e-12, abs=1e-12)
    # The principal point at the top-left corner: the far corner (99.5, 99.5) is x = y = 1, r = 2.
    corner = make_intrinsics(100.0, 100.0, -0.5, -0.5)
    assert lens_distortion_shift(corner, 100, 100, (0.01, 0, 0, 0, 0, 0)) == pytest.approx(100 * 1 * 0.01 * 2 * 2**0.5)


def test_intrinsics_resize_and_crop():
    K = make_intrinsics(1000.0, 1000.0, 960.0, 540.0)
    half = resize_intrinsics(K, (1080, 1920), (540, 960))
    assert torch.allclose(half, make_intrinsics(500.0, 500.0, 480.0, 270.0))
    cropped = crop_intrinsics(K, top=40, left=100)
    assert torch.allclose(cropped, make_intrinsics(1000.0, 1000.0, 860.0, 500.0))
    # 1080×1920 → 704×1280: scale 2/3 to 720×1280, crop 8 rows off the top.
    assert resize_crop_plan((1080, 1920), (704, 1280)) == ((720, 1280), 8, 0)
    fitted = resize_crop_intrinsics(K, (1080, 1920), (704, 1280))
    assert torch.allclose(fitted, make_intrinsics(1000 * 2 / 3, 1000 * 2 / 3, 640.0, 360.0 - 8.0), atol=1e-4)


def test_invert_pose_and_centres():
    T = random_pose(0)
    assert torch.allclose(invert_pose(T) @ T, torch.eye(4, dtype=T.dtype), atol=1e-12)
    assert torch.allclose(invert_pose(T), torch.linalg.inv(T), atol=1e-12)
    w2c = torch.eye(4)
    w2c[:3, 3] = torch.tensor([1.0, 2.0, 3.0])  # identity rotation: centre = −t
    assert torch.allclose(camera_centers(w2c), torch.tensor([-1.0, -2.0, -3.0]))


def test_look_at_closed_form():
    # Camera at (0, 0, −2) looking at the origin: identity rotation, centre (0, 0, −2).
    w2c = look_at(torch.tensor([0.0, 0.0, -2.0]), torch.zeros(3))
    assert torch.allclose(w2c[:3, :3], torch.eye(3), atol=1e-6)
    assert torch.allclose(camera_centers(w2c), torch.tensor([0.0, 0.0, -2.0]), atol=1e-6)
    # Camera at (2, 0, 0) looking at the origin: its z axis is world −x, its x axis world +z.
    w2c = look_at(torch.tensor([2.0, 0.0, 0.0]), torch.zeros(3))
    assert torch.allclose(w2c[2, :3], torch.tensor([-1.0, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(w2c[0, :3], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    # The target projects to the image centre.
    K = make_intrinsics(100.0, 100.0, 50.0, 40.0)
    uv, z = project_points(torch.zeros(1, 3), K, w2c)
    assert torch.allclose(uv, torch.tensor([[50.0, 40.0]]), atol=1e-5) and z.item() == pytest.approx(2.0)


def test_gen3c_look_at_translation_is_minus_p():
    p = torch.tensor([-0.15, 0.0, 0.0], dtype=torch.float64)
    A = gen3c_look_at(p, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    f = torch.tensor([0.15, 0.0, 1.0], dtype=torch.float64) / math.sqrt(1.0225)
    assert torch.allclose(A[2, :3], f)
    assert torch.allclose(A[0, :3], torch.tensor([f[2], 0.0, -f[0]], dtype=torch.float64))
    assert torch.allclose(A[1, :3], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    assert torch.allclose(A[:3, 3], -p)


def test_opengl_round_trip_and_known_case():
    w2c = random_pose(1)
    assert torch.allclose(opengl_to_opencv(opencv_to_opengl(w2c)), w2c, atol=1e-12)
    # The identity OpenCV camera is an OpenGL camera with y and z flipped.
    gl = opencv_to_opengl(torch.eye(4, dtype=torch.float64))
    assert torch.allclose(gl, torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64)))


def test_unproject_project_round_trip():
    K = make_intrinsics(200.0, 210.0, 31.5, 23.5)
    w2c = random_pose(2).float()
    depth = 1.0 + torch.rand(48, 64)
    pts = unproject_depth(depth, K, w2c)
    uv, z = project_points(pts.reshape(-1, 3), K, w2c)
    v, u = torch.meshgrid(torch.arange(48.0), torch.arange(64.0), indexing="ij")
    assert torch.allclose(uv, torch.stack([u, v], -1).reshape(-1, 2), atol=1e-3)
    assert torch.allclose(z, depth.reshape(-1), atol=1e-4)
    # Centre pixel of an identity camera at depth d lies on the optical axis.
    p = unproject_depth(torch.full((3, 3), 5.0), make_intrinsics(10.0, 10.0, 1.0, 1.0))
    assert torch.allclose(p[1, 1], torch.tensor([0.0, 0.0, 5.0]))


def test_rotation_angle():
    R = torch.eye(3)
    Rz = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert rotation_angle_degrees(R, Rz).item() == pytest.approx(90.0, abs=1e-3)


def random_rotations(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, 3, 3, generator=g, dtype=torch.float64))
    return Q * torch.linalg.det(Q).sign()[:, None, None]


def test_quaternion_round_trip():
    R = random_rotations(64)
    q = matrix_to_quaternion(R)
    assert torch.allclose(q.norm(dim=-1), torch.ones(64, dtype=torch.float64))
    assert (q[:, 0] >= 0).all()
    assert torch.allclose(quaternion_to_matrix(q), R, atol=1e-12)


def test_slerp_is_unit_norm_and_halves_the_angle():
    R = random_rotations(32, seed=1)
    q0, q1 = matrix_to_quaternion(R[:16]), matrix_to_quaternion(R[16:])
    total = rotation_angle_degrees(R[:16], R[16:])
    for t in (0.0, 0.25, 0.5, 1.0):
        q = quaternion_slerp(q0, q1, torch.full((16,), t, dtype=torch.float64))
        assert torch.allclose(q.norm(dim=-1), torch.ones(16, dtype=torch.float64), atol=1e-12)
        # (The unit norm alone holds for any output: slerp normalises last.) On the geodesic,
        # at t the rotation has turned t of the way from R0 and has 1 − t left to R1.
        Rt = quaternion_to_matrix(q)
        assert torch.allclose(rotation_angle_degrees(R[:16], Rt), t * total, atol=1e-6)
        assert torch.allclose(rotation_angle_degrees(Rt, R[16:]), (1 - t) * total, atol=1e-6)
    half = quaternion_to_matrix(quaternion_slerp(q0, q1, 0.5))
    assert torch.allclose(rotation_angle_degrees(R[:16], half), total / 2, atol=1e-6)
    # The sign of a quaternion does not matter: slerp takes the shorter arc.
    assert torch.allclose(quaternion_to_matrix(quaternion_slerp(q0, -q1, 0.5)), half, atol=1e-12)


#: Each device test runs on the CPU here and on a GPU where there is one (the coordinator's device run).
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on the device)"))]


@pytest.mark.parametrize("device", ["meta", *DEVICES])
def test_slerp_with_a_float_t_stays_on_the_quaternions_device(device):
    """A float (or CPU tensor) t was made a CPU tensor, and slerp of CUDA quaternions failed with
    "Tensor on device cpu is not on the expected device cuda" ("meta" mixes with the CPU no more
    than CUDA does, so the CPU run shows it too)."""
    R = random_rotations(8, seed=2)
    q0, q1 = matrix_to_quaternion(R[:4]).to(device), matrix_to_quaternion(R[4:]).to(device)
    for t in (0.5, torch.full((4,), 0.5, dtype=torch.float64)):
        q = quaternion_slerp(q0, q1, t)
        assert (q.device.type, q.dtype, q.shape) == (device, torch.float64, (4, 4))
    if device == "meta":
        return
    # float32 quaternions give the float64 answer to float32 precision.
    half = quaternion_to_matrix(quaternion_slerp(q0, q1, 0.5))
    assert half.device.type == device
    assert torch.allclose(quaternion_to_matrix(quaternion_slerp(q0.float(), q1.float(), 0.5)), half, atol=1e-6)
    assert torch.allclose(rotation_angle_degrees(R[:4], half.cpu()), rotation_angle_degrees(R[:4], R[4:]) / 2, atol=1e-9)


@pytest.mark.parametrize("device", DEVICES)
def test_cameras_keep_their_intrinsics_on_the_poses_device(device):
    """K built on the CPU (make_intrinsics) with poses on a GPU made Cameras whose render failed
    later in K @ w2c; K now follows w2c."""
    w2c = look_at(torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]], dtype=torch.float64), torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64))
    cams = Cameras(w2c.to(device), make_intrinsics(50.0, 50.0, 31.5, 23.5, dtype=torch.float64), 48, 64)
    assert (cams.w2c.device.type, cams.K.device.type, cams.w2c.dtype, cams.K.dtype) == (device, device, torch.float32, torch.float32)
    assert torch.equal(cams.w2c.cpu(), w2c.float()) and torch.equal(cams.K[1].cpu(), make_intrinsics(50.0, 50.0, 31.5, 23.5))
    uv, z = project_points(torch.tensor([[[0.0, 0.0, 2.0]]], device=device), cams.K[:1], cams.w2c[:1])
    assert torch.allclose(uv.cpu(), torch.tensor([[[31.5, 23.5]]])) and torch.allclose(z.cpu(), torch.tensor([[2.0]]))


def test_validation_errors():
    with pytest.raises(Gen3cInputError, match="focal"):
        validate_intrinsics(make_intrinsics(-1.0, 1.0, 0.0, 0.0))
    with pytest.raises(Gen3cInputError, match="NaN"):
        validate_intrinsics(torch.tensor([[float("nan"), 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    bad = torch.eye(4)
    bad[0, 0] = 2.0
    with pytest.raises(Gen3cInputError, match="rigid"):
        validate_poses(bad)
    validate_poses(random_pose(3))


def test_a_transposed_pose_is_named_as_one_and_a_bad_last_row_is_not():
    """A column-major export (OpenGL, glm) puts the translation in the last row: its rotation is
    still a rotation, so the last row is what is wrong, and the fix is to transpose it."""
    pose = random_pose(3)
    pose[0, 3] = 0.5
    with pytest.raises(Gen3cInputError, match=r"^poses must have \[0, 0, 0, 1\] as its last row: \[0, 0, 0, 1\] is its last column, so it looks transposed \(column-major\): transpose it$"):
        validate_poses(pose.T.contiguous(), "poses")
    with pytest.raises(Gen3cInputError, match=r"\(frame 5\): \[0, 0, 0, 1\] is that frame's last column, .*: transpose each matrix$"):
        validate_poses(torch.stack([pose, pose, pose, pose.T]), "poses", frame_offset=2)
    bad = pose.clone()
    bad[3, 2] = 1.0  # neither row nor column
    with pytest.raises(Gen3cInputError, match=r"last row$"):
        validate_poses(bad, "poses")


def test_a_rotation_rounded_to_two_decimals_is_named_as_rounded():
    """cos 30° = 0.87, sin 30° = 0.5 (a file written with 2 decimals) is 0.0069 from orthonormal,
    past the 1e-3 allowed: the error spoke only of scale, shear or mirroring."""
    pose = torch.eye(4, dtype=torch.float64)
    pose[0, 0] = pose[2, 2] = 0.87
    pose[0, 2], pose[2, 0] = 0.5, -0.5
    with pytest.raises(Gen3cInputError, match=r"\(frame 1\): .*out of it; it is only 0\.0069 off, as a rotation rounded to 2 or 3 "
                       r"decimals is: then write it with 6 or more$"):  # fmt: skip
        validate_poses(torch.stack([torch.eye(4, dtype=torch.float64), pose]), "poses")
    scaled = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0]))
    with pytest.raises(Gen3cInputError, match=r"take any scale, shear or mirroring out of it$"):
        validate_poses(scaled, "poses")


def test_cameras_stack():
    K = make_intrinsics(100.0, 100.0, 64.0, 32.0)
    cams = Cameras(torch.eye(4)[None].repeat(3, 1, 1), K, 64, 128)
    assert len(cams) == 3 and cams.K.shape == (3, 3, 3)
    assert len(cams[1:]) == 2 and len(cams[0]) == 1
    half = cams.resized(32, 64)
    assert half.K[0, 0, 0].item() == pytest.approx(50.0)
    both = Cameras.cat([cams, half.resized(64, 128)])
    assert len(both) == 6


def _on_meta(cams: Cameras) -> Cameras:
    # Cameras cannot be built on 'meta' (their checks read values), so the tensors are swapped
    # in afterwards: enough for a refusal that must come before any value is read.
    moved = Cameras(cams.w2c, cams.K, cams.height, cams.width)
    moved.w2c, moved.K = cams.w2c.to("meta"), cams.K.to("meta")
    return moved


def test_cameras_cat_refuses_cameras_on_different_devices_in_one_line():
    # Before: torch's raw error (or, with 'meta', "Tensor.item() cannot be called on meta tensors").
    cams = Cameras(torch.eye(4)[None].repeat(2, 1, 1), make_intrinsics(100.0, 100.0, 64.0, 32.0), 64, 128)
    with pytest.raises(Gen3cInputError, match=r"^cannot concatenate cameras on different devices \['cpu', 'meta'\]: move them to one first with \.to\(device\)$"):
        Cameras.cat([cams, _on_meta(cams)])
    assert torch.equal(Cameras.cat([cams, cams]).w2c, cams.w2c.repeat(2, 1, 1))  # one device: still joined


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on the device)")
def test_cameras_cat_refuses_cpu_and_cuda_cameras():
    cams = Cameras(torch.eye(4)[None], make_intrinsics(100.0, 100.0, 64.0, 32.0), 64, 128)
    with pytest.raises(Gen3cInputError, match=r"different devices \['cpu', 'cuda:0'\]: move them to one first with \.to\(device\)"):
        Cameras.cat([cams.to("cuda"), cams])
    assert Cameras.cat([cams.to("cuda"), cams.to("cuda")]).w2c.device.type == "cuda"


def test_cameras_take_arrays_and_refuse_wrong_shapes_in_one_line():
    import numpy as np

    K = make_intrinsics(40.0, 40.0, 24.0, 16.0)
    cams = Cameras(np.eye(4)[None].repeat(2, 0), K.numpy(), np.int64(32), 48)  # before: kept the numpy arrays
    assert isinstance(cams.w2c, torch.Tensor) and cams.K.shape == (2, 3, 3) and type(cams.height) is int
    with pytest.raises(Gen3cInputError, match=r"w2c must be \(N, 4, 4\) .*got \(4, 4\): one camera is w2c\[None\]"):
        Cameras(torch.eye(4), K, 32, 48)
    with pytest.raises(Gen3cInputError, match=r"K must be \(3, 3\) or \(N, 3, 3\) with N=2"):
        Cameras(torch.eye(4)[None].repeat(2, 1, 1), K[None].repeat(3, 1, 1), 32, 48)
    with pytest.raises(Gen3cInputError, match=r"height and width must be the image size .*, got 32.5 × 48$"):  # before: not the values
        Cameras(torch.eye(4)[None], K, 32.5, 48)
    with pytest.raises(Gen3cInputError, match=r"K must have shape \(\*B, 3, 3\)"):
        crop_intrinsics(torch.eye(4), 2.0, 2.0)


def test_cameras_store_float32_whatever_they_are_given():
    """Before: Cameras built from numpy's float64 arrays stayed float64, and the preview generator
    failed on them mid-render ("expected m1 and m2 to have the same dtype")."""
    import numpy as np

    cams = Cameras(np.eye(4)[None].repeat(3, 0), make_intrinsics(40.0, 40.0, 24.0, 16.0, dtype=torch.float64), 32, 48)
    assert cams.w2c.dtype == cams.K.dtype == torch.float32
    assert Cameras(torch.eye(4, dtype=torch.int64)[None], [[40, 0, 24], [0, 40, 16], [0, 0, 1]], 32, 48).K.dtype == torch.float32
    w2c = torch.eye(4)[None]
    assert Cameras(w2c, make_intrinsics(40.0, 40.0, 24.0, 16.0), 32, 48).w2c is w2c  # float32 is taken as it is, not copied
    with pytest.raises(Gen3cInputError, match="Cameras.w2c is str 'poses': pass real numbers"):
        Cameras("poses", make_intrinsics(40.0, 40.0, 24.0, 16.0), 32, 48)
    # one camera by a numpy index, as by an int (before: a (4, 4) w2c, refused); a short repr
    assert len(cams[np.int64(1)]) == 1 and torch.equal(cams[np.int64(-1)].w2c, cams.w2c[-1:])
    assert repr(cams) == "Cameras(N=3, height=32, width=48, device=cpu)"


def test_cameras_refuse_complex_matrices_in_the_wording_images_and_depth_use():
    """Complex K or w2c is refused by Cameras (and as_float32 / as_float64, which keyframes use)
    in the one wording gen3c uses for complex images, depth and prepare_source's matrices
    (gen3c.errors.complex_refusal). Before: "Cameras.K is torch.complex128: pass real numbers (a
    tensor or an array)", another sentence for the same mistake."""
    import numpy as np

    from gen3c.cameras import as_float64

    K = make_intrinsics(40.0, 40.0, 24.0, 16.0)
    wording = r" holds {} values: pass real numbers \(its \.real, where the imaginary part is 0\)$"
    with pytest.raises(Gen3cInputError, match="^Cameras.K" + wording.format("complex128")):
        Cameras(np.eye(4)[None], K.double().numpy() + 0j, 32, 48)
    with pytest.raises(Gen3cInputError, match="^Cameras.w2c" + wording.format("complex64")):
        Cameras(torch.eye(4, dtype=torch.complex64)[None], K, 32, 48)
    with pytest.raises(Gen3cInputError, match="^keyframe" + wording.format("complex128")):
        as_float64([np.eye(4) + 1e-3j], "keyframe")
    with pytest.raises(Gen3cInputError, match="^Cameras.w2c is torch.bool: pass real numbers"):  # not complex: as before
        Cameras(torch.eye(4, dtype=torch.bool)[None], K, 32, 48)


def test_cameras_from_a_list_of_matrices_and_what_they_refuse():
    """A path as scripts build it, a list of 4×4 matrices, makes the same cameras as their stack.
    Before: a list of tensors was refused ("Cameras.w2c is a list"), a list of arrays went through
    torch's number-by-number conversion (with its "extremely slow" warning); a 4×4 K raised
    torch's RuntimeError from expand; a pose that is no rotation and normalised intrinsics were
    kept, and rendered nothing (or a speck)."""
    import doctest
    import warnings

    import gen3c.cameras

    K = make_intrinsics(40.0, 40.0, 24.0, 16.0)
    poses = [random_pose(i) for i in range(3)]
    stacked = Cameras(torch.stack(poses), K, 32, 48)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in (poses, [p.numpy() for p in poses], tuple(p.float() for p in poses)):
            assert torch.equal(Cameras(path, K, 32, 48).w2c, stacked.w2c)
        assert torch.equal(Cameras(stacked.w2c, [K, K, K], 32, 48).K, stacked.K)
    mistakes = [
        ((poses[:2] + [torch.eye(3)], K), r"Cameras.w2c is a list of 3 items of shapes \(3, 3\), \(4, 4\): pass items of one shape"),
        ((torch.stack(poses), torch.eye(4)), r"Cameras.K must be \(3, 3\) or \(N, 3, 3\) with N=3, got \(4, 4\)"),
        ((torch.stack(poses) * 2, K), r"Cameras.w2c are not rigid \(frame 0\): the 3×3 block must be a rotation"),
        ((torch.stack(poses), K / torch.tensor([[48.0, 1, 48], [1, 32, 32], [1, 1, 1]])), r"Cameras.K \(frame 0\) \(fx=0.833333, .*\) look normalised"),
    ]
    for (w2c, intrinsics), match in mistakes:
        with pytest.raises(Gen3cInputError, match=match):
            Cameras(w2c, intrinsics, 32, 48)
    assert doctest.testmod(gen3c.cameras).failed == 0  # the docstrings' examples, Cameras' included


def test_a_field_of_view_in_radians_is_noted():
    """math.radians(60) passed as degrees makes a 1° telephoto; it is noted with the number to
    pass. Before: taken without a word (a focal length 57 times too long)."""
    import warnings

    with pytest.warns(UserWarning, match=r"field of view 1.0472° is narrower .*: if it is in radians, pass 60 \(degrees\)"):
        K = intrinsics_from_fov(math.radians(60), 64, 112)
    assert K[0, 0].item() == pytest.approx(56 / math.tan(math.radians(math.radians(60)) / 2))  # still what was asked
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        intrinsics_from_fov(3.5, 64, 112)  # a long lens, in degrees: no note


def test_intrinsics_from_fov_refuses_an_unknown_axis():
    # Before: any axis but "horizontal" (e.g. the typo "horizonal") silently meant "vertical".
    assert intrinsics_from_fov(90.0, 100, 200, axis="vertical")[0, 0].item() == pytest.approx(50.0)
    with pytest.raises(Gen3cInputError, match="axis 'horizonal' is unknown: pass 'horizontal'"):
        intrinsics_from_fov(90.0, 100, 200, axis="horizonal")


def test_look_at_refuses_arrays_and_directions_without_an_orientation():
    # Before: numpy / lists gave torch's TypeError or AttributeError, and a view along up or onto
    # the eye itself returned an all-zero rotation (not a camera) without a word.
    import numpy as np

    with pytest.raises(Gen3cInputError, match=r"eye is a numpy array of shape \(3,\): pass a tensor"):
        look_at(np.zeros(3), np.array([0.0, 0.0, 1.0]))
    with pytest.raises(Gen3cInputError, match=r"target must have shape \(\*B, 3\)"):
        look_at(torch.zeros(3), torch.zeros(4))
    for target in ([0.0, -2.0, 0.0], [0.0, 0.0, 0.0]):
        with pytest.raises(Gen3cInputError, match="look_at: a camera looks from eye to target along up, or eye equals target"):
            look_at(torch.zeros(3), torch.tensor(target))


def test_projection_takes_mixed_dtypes_and_checks_shapes():
    # Before: float64 depth (numpy's default) with float32 K was torch's "expected scalar type
    # Double but found Float", and a (3, 4) K failed inside a matmul.
    K = make_intrinsics(10.0, 10.0, 2.0, 1.0)
    w2c = random_pose(5)  # float64
    depth = torch.full((3, 4), 2.0, dtype=torch.float64)
    points = unproject_depth(depth, K, w2c.float())
    assert points.dtype == torch.float64
    assert unproject_depth(torch.full((3, 4), 2), K).dtype == torch.float32  # integer depth: K's dtype
    uv, z = project_points(points.reshape(-1, 3), K, w2c)
    assert uv.dtype == z.dtype == torch.float64
    assert torch.allclose(z, depth.reshape(-1), atol=1e-9) and torch.allclose(uv[5], torch.tensor([1.0, 1.0], dtype=torch.float64))
    with pytest.raises(Gen3cInputError, match=r"K must have shape \(\*B, 3, 3\), got \(3, 4\)"):
        project_points(points.reshape(-1, 3), torch.zeros(3, 4), w2c)
    with pytest.raises(Gen3cInputError, match=r"points must be \(\*B, N, 3\), got \(3,\): one point is points\[None\]"):
        project_points(torch.ones(3), K, w2c)
    with pytest.raises(Gen3cInputError, match=r"depth must be a \(\*B, H, W\) tensor, got a numpy array of shape \(3, 4\)"):
        unproject_depth(depth.numpy(), K)
    with pytest.raises(Gen3cInputError, match=r"camera poses are a numpy array of shape \(4, 4\): pass a tensor"):
        validate_poses(w2c.numpy())



def half_turn(axis: list[float]) -> torch.Tensor:
    """The rotation by 180° about ``axis``: R = 2 n nᵀ − I."""
    n = torch.tensor(axis, dtype=torch.float64)
    n = n / n.norm()
    return 2 * torch.outer(n, n) - torch.eye(3, dtype=torch.float64)


@pytest.mark.parametrize("axis", [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, -2, 3], [-0.3, 0.1, -5]])
@pytest.mark.parametrize("below", [0.0, 1e-9, 1e-5])
def test_quaternion_of_rotations_near_a_half_turn(axis, below):
    """w = cos(θ/2) ≈ 0 near 180°: every component comes from the largest diagonal term, so
    the axis is exact to rounding (dividing by a tiny 4w would not be)."""
    n = torch.tensor(axis, dtype=torch.float64) / torch.tensor(axis, dtype=torch.float64).norm()
    theta = math.pi - below
    expected = torch.cat([torch.tensor([math.cos(theta / 2)], dtype=torch.float64), math.sin(theta / 2) * n])
    # Rodrigues: R = cos θ I + sin θ [n]× + (1 − cos θ) n nᵀ.
    cross = torch.tensor([[0, -n[2], n[1]], [n[2], 0, -n[0]], [-n[1], n[0], 0]], dtype=torch.float64)
    R = math.cos(theta) * torch.eye(3, dtype=torch.float64) + math.sin(theta) * cross + (1 - math.cos(theta)) * torch.outer(n, n)
    if below == 0.0:
        assert torch.allclose(R, half_turn(axis), atol=1e-15)
    q = matrix_to_quaternion(R)
    sign = 1.0 if below else float(torch.sign((q * expected).sum()))  # at exactly 180° q and −q both have w = 0
    assert torch.allclose(q, sign * expected, atol=1e-12), (q, expected)
    assert torch.allclose(quaternion_to_matrix(q), R, atol=1e-12)
    # float32 input (what a browser's camera gives) still round-trips to float32 precision.
    assert torch.allclose(quaternion_to_matrix(matrix_to_quaternion(R.float())), R, atol=1e-6)


def test_quaternion_closed_forms():
    # 90° about z: q = (cos 45°, 0, 0, sin 45°); x goes to y.
    Rz = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    s = math.sqrt(0.5)
    assert torch.allclose(matrix_to_quaternion(Rz), torch.tensor([s, 0, 0, s], dtype=torch.float64), atol=1e-15)
    assert torch.allclose(quaternion_to_matrix(torch.tensor([-s, 0, 0, -s])), Rz, atol=1e-7)  # −q: the same rotation
    assert torch.equal(matrix_to_quaternion(torch.eye(3)), torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))
    # Slerp from the identity to 90° about z at t = 1/3 is 30° about z.
    q = quaternion_slerp(torch.tensor([1.0, 0, 0, 0]), matrix_to_quaternion(Rz), 1 / 3)
    assert torch.allclose(q, torch.tensor([math.cos(math.pi / 12), 0, 0, math.sin(math.pi / 12)], dtype=torch.float64), atol=1e-15)
    with pytest.raises(Gen3cInputError, match=r"R must have shape \(\*B, 3, 3\)"):
        matrix_to_quaternion(torch.eye(4))


def test_integer_intrinsics_are_resized_and_cropped_in_float():
    # Before: an integer K (torch.tensor of whole numbers) was scaled by a diag in its own dtype,
    # so halving the image gave fx = fy = cx = cy = 0, and a half-pixel crop was truncated away.
    K = torch.tensor([[500, 0, 320], [0, 500, 240], [0, 0, 1]])
    assert torch.equal(resize_intrinsics(K, (480, 640), (240, 320)), make_intrinsics(250.0, 250.0, 160.0, 120.0))
    assert torch.equal(crop_intrinsics(K, 0.5, 1.5), make_intrinsics(500.0, 500.0, 318.5, 239.5))
    assert resize_intrinsics(K.double(), (480, 640), (240, 320)).dtype == torch.float64  # floats keep their dtype


def test_make_intrinsics_refuses_nan_and_infinite_numbers():
    # Before: a matrix of NaN or inf came back, refused only where a caller happened to validate it.
    for i, name in enumerate(("fx", "fy", "cx", "cy")):
        for bad, shown in ((math.nan, "nan"), (math.inf, "inf"), (np.float32(-np.inf), "-inf"), (torch.tensor(math.nan), "nan")):
            values = [500.0, 500.0, 320.0, 240.0]
            values[i] = bad
            for function in (make_intrinsics, intrinsics_from_nerfstudio):
                with pytest.raises(Gen3cInputError, match=rf"^{function.__name__} {name} is {shown}: pass fx, fy, cx, cy as finite numbers of pixels"):
                    function(*values)


def test_nested_lists_keep_python_floats_in_float64():
    # Before: torch.as_tensor made a list's Python floats float32 first, so as_float64 (keyframe poses
    # and times, intrinsics= of gen3c.generate) gave 1000.0999755859375 for 1000.1.
    assert as_float64([[1000.1, 0.1], [3, 4]], "x").tolist() == [[1000.1, 0.1], [3.0, 4.0]]
    assert as_float32([[1000.1]], "x").dtype == torch.float32 and as_float64([1, 2], "x").dtype == torch.float64
    for bad in ([[1, 2], [3]], ["a", 1]):
        with pytest.raises(Gen3cInputError, match=r"^x is a list of 2 items: pass real numbers"):
            as_float64(bad, "x")


def test_quaternion_slerp_refuses_nan_infinite_bool_and_complex_inputs():
    # Before: NaN or inf in q0, q1 or t gave a NaN quaternion without a word, and a bool or complex
    # tensor t was taken as 0 and 1 or as its real part.
    q0, q1 = torch.tensor([1.0, 0.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0, 0.0])
    nan_q = torch.tensor([math.nan, 0.0, 0.0, 0.0])
    for args, match in (((nan_q, q1, 0.5), r"q0 holds NaN or infinite values"), ((q0, nan_q, 0.5), r"q1 holds NaN or infinite values"),
                        ((q0, q1, math.inf), r"t holds NaN or infinite values"), ((q0, q1, torch.tensor([0.5, math.nan])), r"t holds NaN or infinite values"),
                        ((q0, q1, torch.tensor([True])), r"t holds bool values"), ((q0, q1, np.array([0.5 + 0.5j])), r"t holds complex128 values")):  # fmt: skip
        with pytest.raises(Gen3cInputError, match=rf"^quaternion_slerp {match}: pass"):
            quaternion_slerp(*args)


def test_cameras_refuse_a_bool_height_or_width():
    # Before: True was taken as 1 pixel (operator.index(True) == 1), so the camera's K was refused as
    # "outside the 48×1 image", blaming the intrinsics.
    K = make_intrinsics(40.0, 40.0, 24.0, 16.0)
    for height, width in ((True, 48), (32, torch.tensor(True))):
        with pytest.raises(Gen3cInputError, match=r"^Cameras height and width must be the image size in pixels, two positive whole numbers, got "):
            Cameras(torch.eye(4)[None], K, height, width)
    assert Cameras(torch.eye(4)[None], K, torch.tensor(32), np.int64(48)).width == 48  # integers of torch's and numpy's still count


def test_image_sizes_as_tensors_work_as_tuples_do():
    # Before: torch.tensor([H, W]) was refused as no "(height, width)", and a tuple of its 0-d tensors
    # (tuple(t), *t) too, though a numpy array of two sides was taken.
    K = make_intrinsics(500.0, 500.0, 320.0, 240.0)
    for old, new in ((torch.tensor([480, 640]), torch.tensor([200, 320])), (tuple(torch.tensor([480, 640])), np.array([200, 320]))):
        assert torch.equal(resize_intrinsics(K, old, new), resize_intrinsics(K, (480, 640), (200, 320)))
        plan = resize_crop_plan(old, new)
        assert plan == ((240, 320), 20, 0) and all(type(n) is int for n in (*plan[0], *plan[1:]))  # Python's ints, not tensors
    assert torch.equal(intrinsics_from_fov(60, *torch.tensor([48, 64])), intrinsics_from_fov(60, 48, 64))
    for bad in (torch.tensor([True, True]), torch.tensor([[48, 64]]), torch.tensor([-48, 64])):
        with pytest.raises(Gen3cInputError, match=r"^image size .* must be \(height, width\) in pixels, two positive numbers$"):
            resize_crop_plan(bad, (20, 32))


def test_fov_from_focal_refuses_focal_lengths_that_have_no_field_of_view():
    # Before: 0 was Python's ZeroDivisionError and −100 px a field of view of −145°.
    for focal in (0.0, -100.0, math.nan):
        with pytest.raises(Gen3cInputError, match=r"focal length .* has no field of view: pass a positive focal length"):
            fov_from_focal(focal, 640)


def test_unproject_depth_refuses_singular_or_mirrored_intrinsics_and_takes_integers():
    # Before: fx = 0 was torch's "linalg.inv: ... the input matrix is singular", fx < 0 silently
    # mirrored the points, and an all-integer depth and K failed in linalg.inv ("Got Long").
    depth = torch.ones(2, 3)
    for fx in (0.0, -1.0):
        with pytest.raises(Gen3cInputError, match="K have a focal length ≤ 0"):
            unproject_depth(depth, make_intrinsics(fx, 1.0, 1.0, 1.0))
    points = unproject_depth(torch.full((2, 3), 2), torch.tensor([[2, 0, 1], [0, 2, 1], [0, 0, 1]]))
    assert points.dtype == torch.float32
    # Pixel (u, v) = (2, 1) at depth 2: X = 2 · ((2 − 1) / 2, (1 − 1) / 2, 1).
    assert torch.equal(points[1, 2], torch.tensor([1.0, 0.0, 2.0]))


def test_unproject_and_project_pair_batches_or_name_them_and_move_k_to_the_tensors_device():
    """A batch of 3 depth maps with 2 cameras was torch's "The size of tensor a (2) must match the
    size of tensor b (3) at non-singleton dimension 0"; K built on the CPU (intrinsics_from_fov)
    with depth on another device was torch's "Expected all tensors to be on the same device"."""
    K = make_intrinsics(10.0, 10.0, 1.5, 1.0)
    w2c = torch.stack([random_pose(1), random_pose(2)]).float()
    depth = 1.0 + torch.rand(3, 3, 4)
    with pytest.raises(Gen3cInputError, match=r"^unproject_depth's batch dimensions do not pair up \(depth \(3,\), K \(2,\)\): pass one per item"):
        unproject_depth(depth, K.expand(2, 3, 3))
    with pytest.raises(Gen3cInputError, match=r"^unproject_depth's batch dimensions do not pair up \(depth \(3,\), K \(\), w2c \(2,\)\)"):
        unproject_depth(depth, K, w2c)
    with pytest.raises(Gen3cInputError, match=r"^project_points's batch dimensions do not pair up \(points \(3,\), K \(\), w2c \(2,\)\)"):
        project_points(torch.rand(3, 5, 3), K, w2c)
    # Batches that broadcast: one K for every map, one point set into each camera.
    points = unproject_depth(depth[:2], K, w2c)
    assert points.shape == (2, 3, 4, 3) and torch.allclose(points[1], unproject_depth(depth[1], K, w2c[1]))
    uv, z = project_points(points[0].reshape(-1, 3), K, w2c)
    assert uv.shape == (2, 12, 2) and torch.allclose(z[0], depth[0].reshape(-1), atol=1e-5)
    # K and w2c on the CPU, depth and points elsewhere ("meta" stands for a GPU): computed there.
    on_meta = unproject_depth(depth[:2].to("meta"), K, w2c)
    assert on_meta.device.type == "meta" and on_meta.shape == (2, 3, 4, 3)
    uv, z = project_points(torch.rand(5, 3, device="meta"), K, w2c)
    assert uv.device.type == "meta" and uv.shape == (2, 5, 2) and z.shape == (2, 5)


def test_look_at_refuses_non_finite_coordinates():
    # Before: a NaN eye passed the degenerate-direction check (NaN ≤ x is False) and gave an all-NaN pose.
    nan = torch.tensor([math.nan, 0.0, 0.0])
    for eye, target, up in ((nan, torch.ones(3), None), (torch.zeros(3), nan, None), (torch.zeros(3), torch.ones(3), nan)):
        with pytest.raises(Gen3cInputError, match="look_at .* contains NaN or infinite values"):
            look_at(eye, target, up)
    # Before: a complex eye gave a complex "pose" (refused as every camera function refuses complex numbers).
    with pytest.raises(Gen3cInputError, match=r"^eye holds complex64 values: pass real numbers"):
        look_at(torch.zeros(3, dtype=torch.complex64), torch.tensor([0.0, 0.0, 2.0]))


def test_look_at_names_a_zero_up():
    # Before: "a camera looks from eye to target along up, or eye equals target".
    with pytest.raises(Gen3cInputError, match=r"^look_at up is \(0, 0, 0\): pass the world's up direction"):
        look_at(torch.zeros(3), torch.tensor([0.0, 0.0, 2.0]), torch.zeros(3))


def test_rotation_angle_keeps_small_angles_in_float32():
    # Before: arccos((trace − 1) / 2) rounded cos 0.01° = 1 − 1.5e-8 to 1 in float32, so a
    # 0.01° turn measured 0°.
    for degrees in (0.01, 1.0, 90.0, 179.99):
        a = math.radians(degrees)
        Rx = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(a), -math.sin(a)], [0.0, math.sin(a), math.cos(a)]])
        assert rotation_angle_degrees(torch.eye(3), Rx).item() == pytest.approx(degrees, rel=1e-4)
    with pytest.raises(Gen3cInputError, match=r"R_b must have shape \(\*B, 3, 3\), got \(4, 4\)"):
        rotation_angle_degrees(torch.eye(3), torch.eye(4))


def test_cameras_index_in_range_and_iterate_once_through():
    # Before: cameras[3] of 3 was an empty stack (slice(3, 4)) and `for camera in cameras` never
    # ended: Python iterates through __getitem__ until an IndexError that never came.
    w2c = torch.eye(4).repeat(3, 1, 1)
    w2c[:, 0, 3] = torch.tensor([0.0, 1.0, 2.0])
    cams = Cameras(w2c, make_intrinsics(100.0, 100.0, 64.0, 32.0), 64, 128)
    assert [float(c.w2c[0, 0, 3]) for c in cams] == [0.0, 1.0, 2.0]
    assert float(cams[-3].w2c[0, 0, 3]) == 0.0 and float(cams[-1].w2c[0, 0, 3]) == 2.0
    for index in (3, -4):
        with pytest.raises(Gen3cInputError, match=rf"camera {index} is out of range for 3 cameras: pass 0 … 2"):
            cams[index]
    # numpy's index arrays and masks pick cameras as tensors do (before: TypeError "only integer
    # scalar arrays can be converted to a scalar index"); numpy's integers pick one camera.
    assert cams[np.array([0, 2])].w2c[:, 0, 3].tolist() == [0.0, 2.0]
    assert cams[np.array([True, False, True])].w2c[:, 0, 3].tolist() == [0.0, 2.0]
    assert cams[np.int64(1)].w2c[:, 0, 3].tolist() == [1.0]
    # Any integer dtype as numpy takes it (before: a uint8 array was torch's mask, "The shape of the
    # mask [2] … does not match", and uint64 "tensors used as indices must be long, int, byte or bool").
    for dtype in (np.uint8, np.uint64, np.int16):
        assert cams[np.array([0, 2], dtype)].w2c[:, 0, 3].tolist() == [0.0, 2.0]


def test_image_sizes_that_cannot_be_resized_or_spanned_are_refused():
    # Before: a 0 in an image size was Python's ZeroDivisionError in resize_intrinsics and
    # resize_crop_plan, focal_from_fov over 0 pixels a focal length of 0, and Cameras.cat([])
    # "cannot concatenate cameras of different image sizes []".
    K = make_intrinsics(100.0, 100.0, 64.0, 32.0)
    for old, new in (((0, 640), (240, 320)), ((480, 640), (240, -1)), ((480,), (240, 320))):
        with pytest.raises(Gen3cInputError, match=r"image size .* must be \(height, width\) in pixels, two positive numbers"):
            resize_intrinsics(K, old, new)
        with pytest.raises(Gen3cInputError, match=r"image size .* must be \(height, width\) in pixels"):
            resize_crop_plan(old, new)
    with pytest.raises(Gen3cInputError, match="a field of view spans 0 pixels: pass the image's width or height"):
        intrinsics_from_fov(60.0, 0, 640, axis="vertical")
    # Before: Python's TypeError "'<' not supported between instances of 'int' and 'NoneType'".
    for size in (None, "640"):
        with pytest.raises(Gen3cInputError, match=rf"^a field of view spans {size!r} pixels: pass the image's width or height"):
            intrinsics_from_fov(60.0, 480, size)
    # Before: the side the fov does not span went unchecked: a K with its principal point at cy = −32.
    with pytest.raises(Gen3cInputError, match=r"image size \(-64, 112\) must be \(height, width\) in pixels, two positive numbers"):
        intrinsics_from_fov(60.0, -64, 112)
    with pytest.raises(Gen3cInputError, match="Cameras.cat got no cameras"):
        Cameras.cat([])
    import numpy as np

    assert resize_crop_plan((np.int64(1080), np.int64(1920)), torch.Size([704, 1280])) == ((720, 1280), 8, 0)  # numpy / torch sizes still fit


def test_check_intrinsics_fit_refuses_a_list_in_one_line():
    # Before: AttributeError: 'list' object has no attribute 'ndim'.
    from gen3c.cameras import check_intrinsics_fit

    with pytest.raises(Gen3cInputError, match=r"intrinsics are a list of 3 items: pass a tensor \(torch.as_tensor\(K\)\)"):
        check_intrinsics_fit(make_intrinsics(100.0, 100.0, 64.0, 32.0).tolist(), 64, 128)


def test_look_at_pairs_one_eye_with_many_targets_and_mixed_dtypes():
    # Before: one (3,) eye with a (2, 3) stack of targets, or a (3,) up with a stack of eyes, was
    # torch's "linalg.cross: inputs must have the same number of dimensions"; a float32 eye with a
    # float64 target failed in a matmul, an integer eye in normalize.
    targets = torch.tensor([[0.0, 0.0, 2.0], [2.0, 0.0, 0.0]])
    w2c = look_at(torch.zeros(3), targets)
    assert w2c.shape == (2, 4, 4)
    # Looking along +z from the origin is the identity; along +x the camera's z axis is world +x.
    assert torch.allclose(w2c[0], torch.eye(4), atol=1e-6)
    assert torch.allclose(w2c[1, 2, :3], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(look_at(torch.zeros(2, 3), targets, up=torch.tensor([0.0, -1.0, 0.0])), w2c)
    mixed = look_at(torch.zeros(3), targets[0].double())
    assert mixed.dtype == torch.float64 and torch.allclose(mixed, torch.eye(4, dtype=torch.float64))
    assert torch.equal(look_at(torch.zeros(3, dtype=torch.long), targets[0]), torch.eye(4))
    # an unsigned eye's default up was torch's "value cannot be converted to type uint8 without overflow"
    assert torch.equal(look_at(torch.zeros(3, dtype=torch.uint8), torch.tensor([0, 0, 2], dtype=torch.uint8)), torch.eye(4))
    with pytest.raises(Gen3cInputError, match=r"look_at eye \(2, 3\), target \(3, 3\) and up .* do not pair up"):
        look_at(torch.zeros(2, 3), torch.ones(3, 3))


def test_quaternion_to_matrix_refuses_what_is_no_rotation():
    # Before: (0, 0, 0, 0) became the identity (normalize leaves zero zero) and NaN a NaN matrix.
    for q in ([0.0, 0.0, 0.0, 0.0], [math.nan, 0.0, 0.0, 1.0], [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]):
        with pytest.raises(Gen3cInputError, match="quaternion_to_matrix q has a zero, NaN or infinite quaternion"):
            quaternion_to_matrix(torch.tensor(q))
    # A quaternion of any length is its rotation: (2, 0, 0, 2) is 90° about z.
    Rz = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    assert torch.allclose(quaternion_to_matrix(torch.tensor([2.0, 0.0, 0.0, 2.0])), Rz, atol=1e-12)


def test_intrinsics_of_a_twice_larger_image_centred_coordinates_and_a_transposed_K_are_refused_naming_the_fix():
    """A 960×540 video downscaled from 1920×1080 with its camera kept puts (cx, cy) = (959.5, 539.5)
    at the image's far corner; centred pixel coordinates put it at (0, 0); MATLAB's layout stores
    K transposed. Each is a camera no lens has, refused with its fix; sensible ones pass."""
    from gen3c.cameras import check_intrinsics_fit

    with pytest.raises(Gen3cInputError, match=r"\(fx=1500, fy=1500, cx=959\.5, cy=539\.5\) put the principal point at the bottom-right "
                                              r"corner of the 960×540 .*twice its size .*× ½\)$"):  # fmt: skip
        check_intrinsics_fit(make_intrinsics(1500.0, 1500.0, 959.5, 539.5), 540, 960)
    with pytest.raises(Gen3cInputError, match=r"cx=0, cy=0\) put the principal point at the top-left corner .*add 480 to cx and 270 to cy$"):
        check_intrinsics_fit(make_intrinsics(750.0, 750.0, 0.0, 0.0), 540, 960)
    stack = make_intrinsics(750.0, 750.0, 479.5, 269.5).repeat(3, 1, 1)
    stack[2, :2, 2] = torch.tensor([959.0, 539.0])
    with pytest.raises(Gen3cInputError, match=r"^K \(frame 12\) .*bottom-right corner"):
        check_intrinsics_fit(stack, 540, 960, "K", frame_offset=10)
    with pytest.raises(Gen3cInputError, match=r"last row: they have it as their last column, so they look transposed .*pass K\.T$"):
        check_intrinsics_fit(make_intrinsics(750.0, 750.0, 479.5, 269.5).T, 540, 960)
    with pytest.raises(Gen3cInputError, match=r"look transposed .*: pass each matrix transposed, K\.transpose\(-1, -2\)$"):
        check_intrinsics_fit(make_intrinsics(750.0, 750.0, 479.5, 269.5).T.repeat(4, 1, 1), 540, 960)
    with pytest.raises(Gen3cInputError, match=r"must have \[0, 0, 1\] as their last row$"):  # no hint for a K that is not K.T
        check_intrinsics_fit(torch.ones(3, 3), 540, 960)
    for cx, cy in ((479.5, 269.5), (2.5, 269.5), (957.0, 537.0), (479.5, 539.0)):  # off-centre, but not at a corner
        check_intrinsics_fit(make_intrinsics(750.0, 750.0, cx, cy), 540, 960)
    check_intrinsics_fit(make_intrinsics(20.0, 20.0, 15.5, 15.5), 16, 16)  # tiny images: a corner is a few pixels away


def test_rotation_angle_mixes_float32_float64_and_integer_rotations():
    """90° about z: R = [[0, −1, 0], [1, 0, 0], [0, 0, 1]]. A float32 and a float64 rotation were
    matmul's "expected m1 and m2 to have the same dtype", integer ones vector_norm's error."""
    from gen3c.cameras import rotation_angle_degrees

    R = torch.tensor([[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    angle = rotation_angle_degrees(torch.eye(3), R.double())
    assert angle.dtype == torch.float64 and abs(float(angle) - 90.0) < 1e-12
    assert abs(float(rotation_angle_degrees(torch.eye(3, dtype=torch.int64), R)) - 90.0) < 1e-4


def test_quaternion_slerp_refuses_arrays_in_one_line():
    from gen3c.cameras import quaternion_slerp

    with pytest.raises(Gen3cInputError, match=r"^q0 is a numpy array of shape \(4,\): pass a tensor \(torch\.as_tensor\(q0\)\)$"):
        quaternion_slerp(np.array([1.0, 0, 0, 0]), torch.tensor([1.0, 0, 0, 0]), 0.5)
    with pytest.raises(Gen3cInputError, match=r"^q1 must have shape \(\*B, 4\), got \(3,\)$"):
        quaternion_slerp(torch.tensor([1.0, 0, 0, 0]), torch.tensor([1.0, 0, 0]), 0.5)


def test_gen3c_look_at_takes_integers_and_refuses_arrays_in_one_line():
    """p = (1, 0, 0) looking at (0, 0, 1): f = (−1, 0, 1)/√2, r = (0, 1, 0) × f = (1, 0, 1)/√2,
    u = f × r = (0, 1, 0), translation −p. Integer tensors were vector_norm's RuntimeError
    ("Expected a floating point"), numpy arrays AttributeError ('numpy.ndarray' … 'norm')."""
    s = 1 / math.sqrt(2)
    expected = torch.tensor([[s, 0, s, -1], [0, 1, 0, 0], [-s, 0, s, 0], [0, 0, 0, 1]])
    A = gen3c_look_at(torch.tensor([1, 0, 0]), torch.tensor([0, 0, 1]))
    assert A.dtype == torch.float32 and torch.allclose(A, expected, atol=1e-6)
    mixed = gen3c_look_at(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0, 0, 1], dtype=torch.float64))  # float32 with float64
    assert mixed.dtype == torch.float64 and torch.allclose(mixed, expected.double(), atol=1e-12)
    both = gen3c_look_at(torch.tensor([[1, 0, 0], [1, 0, 0]]), torch.tensor([0, 0, 1]))  # one target for every offset
    assert both.shape == (2, 4, 4) and torch.allclose(both, expected.expand(2, 4, 4), atol=1e-6)
    with pytest.raises(Gen3cInputError, match=r"^position is a numpy array of shape \(3,\): pass a tensor \(torch\.as_tensor\(position\)\)$"):
        gen3c_look_at(np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0]))
    with pytest.raises(Gen3cInputError, match=r"^target must have shape \(\*B, 3\), got \(4,\)$"):
        gen3c_look_at(torch.zeros(3), torch.zeros(4))


def test_focal_and_intrinsics_builders_refuse_text_in_one_line():
    """fov_from_focal("a", 100) was math.isfinite's TypeError, make_intrinsics("a", …) torch's
    ValueError "too many dimensions 'str'"; numbers of every kind still work."""
    with pytest.raises(Gen3cInputError, match=r"^fov_from_focal focal is str 'a': pass a positive focal length and image size in pixels$"):
        fov_from_focal("a", 100)
    with pytest.raises(Gen3cInputError, match=r"^fov_from_focal size is str '100': pass a positive"):
        fov_from_focal(50.0, "100")
    with pytest.raises(Gen3cInputError, match=r"^make_intrinsics fx is str 'a': pass fx, fy, cx, cy as numbers of pixels"):
        make_intrinsics("a", 500.0, 320.0, 240.0)
    with pytest.raises(Gen3cInputError, match=r"^make_intrinsics cy is NoneType 'None': pass fx, fy, cx, cy"):
        make_intrinsics(500.0, 500.0, 320.0, None)
    assert fov_from_focal(np.float32(50.0), torch.tensor(100)) == pytest.approx(90.0)  # 2·atan(50 / 50)
    K = make_intrinsics(np.float64(500.0), 500, torch.tensor(320.0), 240.0)
    assert K.tolist() == [[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]]


def test_integer_poses_invert_and_convert_in_floating_point():
    """90° about z, standing so that w2c's translation is (1, 2, 3): R = [[0, −1, 0], [1, 0, 0],
    [0, 0, 1]], the inverse is [Rᵀ | −Rᵀt] with −Rᵀt = (−2, 1, −3), the camera centre. Integer poses
    came back integer (int64 in, int64 out) where the module's other functions give float32."""
    T = torch.tensor([[0, -1, 0, 1], [1, 0, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]])
    inverse = torch.tensor([[0.0, 1, 0, -2], [-1, 0, 0, 1], [0, 0, 1, -3], [0, 0, 0, 1]])
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))  # OpenCV ↔ OpenGL camera axes
    for result, expected in (
        (invert_pose(T), inverse),
        (camera_centers(T), torch.tensor([-2.0, 1.0, -3.0])),
        (opencv_to_opengl(T), inverse @ flip),
        (opengl_to_opencv(T), invert_pose(T.double() @ flip.double()).float()),
    ):
        assert result.dtype == torch.float32 and torch.equal(result, expected)
    assert torch.equal(opengl_to_opencv(opencv_to_opengl(T)), T.float())
    assert invert_pose(T.double()).dtype == torch.float64  # floating poses keep their dtype


def test_look_at_and_the_pose_and_intrinsics_checks_refuse_a_meta_tensor_in_one_line():
    """A meta tensor (shapes, no values) as look_at's eye or target, or to validate_poses /
    validate_intrinsics (and so check_intrinsics_fit, unproject_depth's K) was torch's
    "Tensor.item() cannot be called on meta tensors"; now the one line Cameras gives it."""
    meta = " is a meta tensor, which holds no values: pass one on the CPU or a GPU$"
    with pytest.raises(Gen3cInputError, match="^look_at eye" + meta):
        look_at(torch.zeros(3, device="meta"), torch.ones(3))
    with pytest.raises(Gen3cInputError, match="^look_at target" + meta):
        look_at(torch.zeros(3), torch.ones(3, device="meta"))
    with pytest.raises(Gen3cInputError, match="^source w2c" + meta):
        validate_poses(torch.eye(4, device="meta"), "source w2c")
    with pytest.raises(Gen3cInputError, match="^source K" + meta):
        validate_intrinsics(torch.eye(3, device="meta"), "source K")
    with pytest.raises(Gen3cInputError, match="^source K" + meta):
        check_intrinsics_fit(torch.eye(3, device="meta"), 32, 48, "source K")
    with pytest.raises(Gen3cInputError, match="^K" + meta):
        unproject_depth(torch.ones(32, 48), torch.eye(3, device="meta"))


@pytest.mark.parametrize(
    ("call", "refusal"),
    [
        (lambda: scale_intrinsics(make_intrinsics(50.0, 50.0, 32.0, 24.0), None, 2.0), r"scale_intrinsics scale_x is None: pass the new size"),
        (lambda: scale_intrinsics(make_intrinsics(50.0, 50.0, 32.0, 24.0), 2.0, "2"), r"scale_intrinsics scale_y is '2': pass the new size"),
        (lambda: scale_intrinsics(make_intrinsics(50.0, 50.0, 32.0, 24.0), math.nan, 2.0), r"scale_intrinsics scale_x is nan: pass"),
        (lambda: scale_intrinsics(make_intrinsics(50.0, 50.0, 32.0, 24.0), 0.0, 2.0), r"scale_intrinsics scale_x is 0: pass .* a number > 0"),
        (lambda: crop_intrinsics(make_intrinsics(50.0, 50.0, 32.0, 24.0), None, 0), r"crop_intrinsics top is None: pass the rows and columns cropped off"),
        (lambda: crop_intrinsics(make_intrinsics(50.0, 50.0, 32.0, 24.0), 0, torch.tensor([1.0, 2.0])), r"crop_intrinsics left is tensor\(\[1\., 2\.\]\)"),
        (lambda: crop_intrinsics(make_intrinsics(50.0, 50.0, 32.0, 24.0), math.inf, 0), r"crop_intrinsics top is inf"),
        (lambda: pixel_grid(None, 4), r"pixel_grid height is None: pass the image's size in pixels, a whole number ≥ 0"),
        (lambda: pixel_grid(4, "6"), r"pixel_grid width is '6'"),
        (lambda: pixel_grid(2.5, 4), r"pixel_grid height is 2\.5"),
        (lambda: pixel_grid(-1, 4), r"pixel_grid height is -1"),
        (lambda: resize_intrinsics(make_intrinsics(50.0, 50.0, 32.0, 24.0), None, (24, 32)), r"image size None must be \(height, width\)"),
        (lambda: intrinsics_from_nerfstudio(50.0, 50.0, None, 24.0), r"intrinsics_from_nerfstudio cx is NoneType 'None'"),
        (lambda: intrinsics_from_nerfstudio_fov(60.0, 48, None), r"image size \(48, None\) must be \(height, width\)"),
        (lambda: quaternion_slerp(torch.tensor([1.0, 0, 0, 0]), torch.tensor([0.0, 1, 0, 0]), None), r"quaternion_slerp t is NoneType 'None'"),
    ],
)
def test_a_wrong_scalar_argument_of_an_intrinsics_helper_is_one_line_naming_it(call, refusal):
    """None, a text or several numbers where a number is asked (a scale, a crop offset, an image
    side) were Python's or torch's own errors from inside the arithmetic ("unsupported operand
    type(s) for -: 'Tensor' and 'NoneType'", arange()'s argument error), NaN a scale or crop of
    NaN, and pixel_grid(2.5, W) silently 3 rows: each is now a Gen3cInputError naming the argument."""
    with pytest.raises(Gen3cInputError, match=f"^{refusal}"):
        call()


def test_intrinsics_helpers_take_numpy_and_tensor_numbers_as_numbers():
    """What the checks let through computes as before: numpy numbers, 0-d arrays and one-element
    tensors as the number, a 0-d integer tensor as an image side, 0 rows as an empty grid."""
    K = make_intrinsics(50.0, 50.0, 32.0, 24.0)
    assert torch.equal(scale_intrinsics(K, np.float32(0.5), torch.tensor(2.0)), make_intrinsics(25.0, 100.0, 16.0, 48.0))
    assert torch.equal(crop_intrinsics(K, np.array(4.0), np.int64(-2)), make_intrinsics(50.0, 50.0, 34.0, 20.0))
    assert pixel_grid(torch.tensor(2), np.int64(3)).tolist() == [[[0, 0, 1], [1, 0, 1], [2, 0, 1]], [[0, 1, 1], [1, 1, 1], [2, 1, 1]]]
    assert pixel_grid(0, 3).shape == (0, 3, 3)
    # an image size as a numpy array (the None check refused it as "must be (height, width)")
    assert torch.equal(resize_intrinsics(K, np.array([48, 64]), (24, 32)), resize_intrinsics(K, (48, 64), (24, 32)))
    assert resize_crop_plan(np.array([48, 64]), (24, 32)) == ((24, 32), 0, 0)


@pytest.mark.parametrize("dtype", [torch.bool, torch.complex64])
@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("K", lambda bad: crop_intrinsics(bad(make_intrinsics(50.0, 50.0, 32.0, 24.0)), 1, 1)),
        ("intrinsics", lambda bad: validate_intrinsics(bad(make_intrinsics(50.0, 50.0, 32.0, 24.0)))),
        ("camera poses", lambda bad: validate_poses(bad(torch.eye(4)))),
        ("T", lambda bad: invert_pose(bad(torch.eye(4)))),
        ("K", lambda bad: unproject_depth(torch.ones(2, 3), bad(make_intrinsics(5.0, 5.0, 1.0, 1.0)))),
        ("depth", lambda bad: unproject_depth(bad(torch.ones(2, 3)), make_intrinsics(5.0, 5.0, 1.0, 1.0))),
        ("points", lambda bad: project_points(bad(torch.ones(4, 3)), make_intrinsics(5.0, 5.0, 1.0, 1.0), torch.eye(4))),
    ],
)
def test_a_bool_or_complex_tensor_of_numbers_is_refused_naming_it(name, call, dtype):
    """A bool or complex tensor where a camera function takes numbers was torch's own error from
    deep inside ("Subtraction, the `-` operator, with a bool tensor is not supported", '"le_cpu"
    not implemented for 'ComplexFloat''), or, for a bool K, depth or pose, silently 0 and 1: a bool
    K passed validate_intrinsics as fx = cx = 1, a mask passed as depth gave points at depth 1."""
    refusal = "is a bool tensor: pass real numbers" if dtype == torch.bool else "holds complex64 values: pass real numbers"
    with pytest.raises(Gen3cInputError, match=f"^{name} {refusal}"):
        call(lambda t: t.to(dtype))


def test_cameras_index_cat_and_to_refuse_what_they_cannot_take_in_one_line():
    """cameras[None], cameras[1.5] and cameras["0"] were Python's "'float' object cannot be
    interpreted as an integer", Cameras.cat([cams, None]) "'NoneType' object has no attribute
    'height'", cameras.to("gpu") torch's "Expected one of cpu, cuda, … device type". Each is one
    line now; whole numbers, masks and device names work as before."""
    cams = Cameras(torch.eye(4).expand(3, 4, 4), make_intrinsics(50.0, 50.0, 32.0, 24.0), 48, 64)
    for index in (None, 1.5, "0"):
        with pytest.raises(Gen3cInputError, match=rf"^cameras\[{re.escape(repr(index))}\]: index a camera by a whole number, a slice, a list of indices or a bool mask$"):
            cams[index]
    with pytest.raises(Gen3cInputError, match=r"^Cameras\.cat got NoneType 'None' among its items: pass a list of Cameras$"):
        Cameras.cat([cams, None])
    with pytest.raises(Gen3cInputError, match=r"^Cameras\.to device 'gpu' is not a device name: pass 'cuda', 'cuda:1' or 'cpu'$"):
        cams.to("gpu")
    assert len(cams[np.int64(1)]) == 1 and len(cams[np.array([True, False, True])]) == 2
    assert len(Cameras.cat([cams, cams[0]])) == 4 and cams.to(torch.device("cpu")).w2c.device.type == "cpu"


@pytest.mark.parametrize(
    ("K", "refusal"),
    [
        (torch.zeros(3, 3), r"K have a focal length ≤ 0: fx and fy must be positive pixels$"),
        (make_intrinsics(-50.0, 50.0, 32.0, 24.0), r"K have a focal length ≤ 0"),
        (torch.full((3, 3), math.nan), r"K contain NaN or infinite values: pass finite fx, fy, cx, cy$"),
    ],
)
def test_project_points_refuses_intrinsics_unproject_depth_refuses(K, refusal):
    """project_points took any 3×3: a zero K put every point at pixel (0, 0), a NaN one at NaN, a
    negative focal length mirrored the image, all silently, where unproject_depth refused the same
    K. It is checked as unproject_depth checks it now."""
    with pytest.raises(Gen3cInputError, match=f"^{refusal}"):
        project_points(torch.tensor([[0.0, 0.0, 2.0]]), K, torch.eye(4))


def test_lens_distortion_shift_refuses_coefficients_and_cameras_it_cannot_use():
    """lens_distortion_shift unpacked its coefficients and K unchecked: None was "'NoneType' object
    is not iterable", five numbers "not enough values to unpack", a text float()'s error, a
    (1, 3, 3) K "only one element tensors can be converted", None as K "not subscriptable", a
    height of None Python's TypeError, fx = 0 a shift of NaN. One line each now; an array K and
    numpy coefficients work."""
    K = make_intrinsics(100.0, 100.0, 49.5, 49.5)
    # (NaN coefficients were a shift of NaN, a bool array shifts of 0 and 1)
    for coefficients in (None, (0.1,) * 5, "abc", (0.1, 0, 0, 0, 0, math.nan), np.array([True, False, False, False, False, False])):
        with pytest.raises(Gen3cInputError, match=r"^lens_distortion_shift coefficients .* must be six finite numbers \(k1, k2, k3, k4, p1, p2\)"):
            lens_distortion_shift(K, 100, 100, coefficients)
    for bad, refusal in ((K[None], r"lens_distortion_shift K must be one \(3, 3\) matrix, got shape \(1, 3, 3\)$"),
                         (None, r"lens_distortion_shift K is NoneType 'None': pass real numbers"),
                         (torch.zeros(3, 3), r"lens_distortion_shift K have a focal length ≤ 0")):  # fmt: skip
        with pytest.raises(Gen3cInputError, match=f"^{refusal}"):
            lens_distortion_shift(bad, 100, 100, (0.1, 0, 0, 0, 0, 0))
    with pytest.raises(Gen3cInputError, match=r"^image size \(None, 100\) must be \(height, width\)"):
        lens_distortion_shift(K, None, 100, (0.1, 0, 0, 0, 0, 0))
    expected = lens_distortion_shift(K, 100, 100, (0.1, 0, 0, 0, 0, 0))
    assert lens_distortion_shift(K.numpy(), 100, 100, np.array([0.1, 0, 0, 0, 0, 0])) == expected
    # nerfstudio's Cameras hold distortion_params as a (6,) tensor: taken as before the checks
    assert lens_distortion_shift(K, 100, 100, torch.tensor([0.1, 0, 0, 0, 0, 0], dtype=torch.float64)) == expected


@pytest.mark.parametrize(
    ("check", "size", "symbol"),
    [(validate_intrinsics, 3, "K"), (validate_poses, 4, "w2c")],
    ids=["intrinsics", "poses"],
)
def test_the_pose_and_intrinsics_checks_refuse_what_is_no_tensor_of_square_matrices_in_one_line(
    check, size, symbol
):
    """validate_intrinsics and validate_poses share their first checks (a tensor, with values, of
    real numbers, of size×size matrices): each refusal names the input and says the fix."""
    no_tensor = rf"^source are a list of 1 item: pass a tensor \(torch\.as_tensor\({symbol}\)\)$"
    with pytest.raises(Gen3cInputError, match=no_tensor):
        check([[1.0]], "source")
    with pytest.raises(Gen3cInputError, match=r"^source is a meta tensor, which holds no values"):
        check(torch.eye(size, device="meta"), "source")
    with pytest.raises(Gen3cInputError, match=r"^source is a bool tensor: pass real numbers"):
        check(torch.eye(size, dtype=torch.bool), "source")
    with pytest.raises(Gen3cInputError, match=r"^source holds complex64 values: pass real numbers"):
        check(torch.eye(size, dtype=torch.complex64), "source")
    not_square = rf"^source must be {size}×{size} matrices, got shape \(2, {size}, 5\)$"
    with pytest.raises(Gen3cInputError, match=not_square):
        check(torch.zeros(2, size, 5), "source")
