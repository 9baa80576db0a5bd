"""Per-frame depth against its cameras (gen3c.io.conventions): camera-to-world poses and inverse
depth saved where world-to-camera poses and z-depth belong are refused; consistent inputs, and
inputs whose readings cannot be told apart, pass. Where the depth cannot tell the poses from their
inverses (a sideways slide), the frames' colours do. Closed-form scene: the inside of a box room,
painted with waves of colour; and gen3c.scenes' presets."""

import numpy as np
import pytest
import torch
from layouts import write_multiview, write_sample, write_vipe

from gen3c.cameras import Cameras, invert_pose, look_at, make_intrinsics, pixel_grid
from gen3c.errors import Gen3cInputError
from gen3c.io.conventions import check_depth_conventions, frame_pairs
from gen3c.io.depth import FAR_DEPTH
from gen3c.io.frames import images_to_uint8
from gen3c.io.gen3c_sample import read_sample
from gen3c.io.multiview import read_multiview
from gen3c.io.vipe import read_vipe

H, W, T = 48, 64, 8
LO, HI = np.array([-3.0, -2.0, -2.0]), np.array([3.0, 1.5, 6.0])


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # (conftest.py)


def cameras(eyes, targets):
    w2c = look_at(torch.tensor(eyes, dtype=torch.float32), torch.tensor(targets, dtype=torch.float32))
    K = make_intrinsics(0.8 * W, 0.8 * W, (W - 1) / 2, (H - 1) / 2).expand(len(eyes), 3, 3).clone()
    return w2c, K


def room_depth(w2c, K):
    """z-depth of the box [LO, HI] seen from inside: each ray's nearest exit plane."""
    v, u = np.mgrid[:H, :W].astype(np.float64)
    out = []
    for i in range(len(w2c)):
        c2w = invert_pose(w2c[i].double()).numpy()
        d = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K[i].double().numpy()).T @ c2w[:3, :3].T
        with np.errstate(divide="ignore"):
            out.append(np.where(d > 0, (HI - c2w[:3, 3]) / d, (LO - c2w[:3, 3]) / d).min(-1))
    return torch.tensor(np.stack(out), dtype=torch.float32)


def walk():
    """Forward and to the right, looking into a corner of the room."""
    return cameras([[0.1 * i, 0.0, 0.15 * i] for i in range(T)], [[2.5, 0.5, 5.0]] * T)


def painted(w2c, K, depth):
    """(T, 3, H, W) uint8 colours of the room's walls where the cameras see them: waves of colour
    over the world's x, y and z, so a wall point has one colour from every camera."""
    rays = pixel_grid(H, W, dtype=torch.float64) @ torch.linalg.inv(K.double()).transpose(-1, -2)[:, None]
    c2w = invert_pose(w2c.double())
    x, y, z = ((rays * depth.double()[..., None]) @ c2w[:, None, :3, :3].transpose(-1, -2) + c2w[:, None, None, :3, 3]).unbind(-1)
    rgb = torch.stack([torch.sin(7 * x + 3 * y), torch.sin(5 * z - 4 * y), torch.sin(6 * (x + z))], 1)
    return (128 + 90 * rgb).round().to(torch.uint8)


def check(depth, w2c, K, valid=None, images=None, per_frame_scale=False):
    valid = torch.ones_like(depth, dtype=torch.bool) if valid is None else valid
    check_depth_conventions(
        depth, valid, K, w2c, poses_name="POSES", depth_name="DEPTH", poses_fix="FIX POSES", depth_fix="FIX DEPTH", images=images,
        per_frame_scale=per_frame_scale,
    )  # fmt: skip


def slide(down=0.0):
    """Sideways (or, with ``down``, down too) past the room's far wall, looking straight ahead."""
    return cameras([[0.06 * i, down * i, 0.0] for i in range(T)], [[0.06 * i, down * i, 5.0] for i in range(T)])


MOTIONS = {
    "walk": walk,
    "orbit": lambda: cameras([[2 * np.sin(0.1 * i), 0.0, 2 - 2 * np.cos(0.1 * i)] for i in range(T)], [[0.0, 0.0, 2.0]] * T),
    "turn": lambda: cameras([[0.3, 0.0, 0.0]] * T, [[5 * np.sin(0.05 * i), 0.3, 5 * np.cos(0.05 * i)] for i in range(T)]),
}


@pytest.mark.parametrize("motion", MOTIONS)
def test_a_consistent_scene_passes_and_each_mistake_is_refused_naming_the_file(motion):
    w2c, K = MOTIONS[motion]()
    depth = room_depth(w2c, K)
    check(depth, w2c, K)
    check(depth * 3.0, w2c, K)  # depth in other units than the poses: no convention mistake
    with pytest.raises(Gen3cInputError, match=r"^POSES look camera-to-world \(.* a median \d+% off .* [01]% read inverted\): FIX POSES$"):
        check(depth, invert_pose(w2c), K)
    for disparity in (1.0 / depth, 7.0 / depth):  # inverse depth at any scale
        with pytest.raises(Gen3cInputError, match=r"^DEPTH looks like inverse depth \(disparity\) \(.* [01]% read as 1 / depth\): FIX DEPTH$"):
            check(disparity, w2c, K)


def test_a_static_camera_and_a_turn_inside_a_sphere_pass_either_way():
    """Where the cameras' motion explains nothing, nothing is said: a camera that never moves, and
    a pure rotation whose scene is at one distance from it (every frame's depth is the same),
    unless its colours tell."""
    w2c, K = cameras([[0.3, 0.0, 0.0]] * T, [[0.3, 0.3, 5.0]] * T)
    depth = room_depth(w2c, K)
    for d, poses in ((depth, w2c), (depth, invert_pose(w2c)), (1.0 / depth, w2c)):
        check(d, poses, K)
    w2c, K = MOTIONS["turn"]()
    rays = pixel_grid(H, W) @ torch.linalg.inv(K[0]).T  # z = 1
    sphere = (2.0 / rays.norm(dim=-1)).expand(T, H, W)  # z-depth of a sphere of radius 2 about the camera
    for d, poses in ((sphere, w2c), (sphere, invert_pose(w2c)), (1.0 / sphere, w2c)):
        check(d, poses, K)
    images = painted(w2c, K, sphere)  # a textured sphere: its colours turn the other way
    check(sphere, w2c, K, images=images)
    with pytest.raises(Gen3cInputError, match=BY_COLOUR):
        check(sphere, invert_pose(w2c), K, images=images)


def test_invalid_pixels_are_left_out_and_a_single_frame_is_not_checked():
    w2c, K = walk()
    depth = room_depth(w2c, K)
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[:, :, : W // 3] = False
    check(torch.where(valid, depth, torch.full_like(depth, 1e-3)), w2c, K, valid)  # junk where not valid: ignored
    with pytest.raises(Gen3cInputError, match="camera-to-world"):
        check(depth, invert_pose(w2c), K, valid)
    sky = depth.clone()
    sky[:, : H // 2] = FAR_DEPTH  # unknown depth placed far away, as readers place NaN: not a measurement
    with pytest.raises(Gen3cInputError, match="camera-to-world"):
        check(sky, invert_pose(w2c), K)
    check(depth[:1], invert_pose(w2c[:1]), K[:1])
    assert frame_pairs(1) == [] and frame_pairs(2) == [(0, 1), (1, 0)]


BY_COLOUR = r"^POSES look camera-to-world \(.* textured pixels land a median \d+ brightness levels .*, \d with the poses inverted; .*\): FIX POSES$"


@pytest.mark.parametrize("down", [0.0, 0.03])
def test_a_sideways_slide_with_swapped_poses_is_refused_by_its_colours(down):
    """Sliding past the far wall and the floor, every pixel sees the same depth in each frame with
    the poses as given or inverted: the depth cannot tell them apart. A pixel's colour can."""
    w2c, K = slide(down)
    depth = room_depth(w2c, K)
    images = painted(w2c, K, depth)
    check(depth, invert_pose(w2c), K)  # the depth alone: no difference
    check(depth, w2c, K, images=images)
    with pytest.raises(Gen3cInputError, match=BY_COLOUR):
        check(depth, invert_pose(w2c), K, images=images)
    # A change of exposure from frame to frame is no misfit.
    brighter = (images.int() + 4 * torch.arange(T)[:, None, None, None] - 16).clamp(0, 255).to(torch.uint8)
    check(depth, w2c, K, images=brighter)
    with pytest.raises(Gen3cInputError, match=BY_COLOUR):
        check(depth, invert_pose(w2c), K, images=brighter)


DISPARITY_BY_COLOUR = (
    r"^DEPTH looks like inverse depth \(disparity\) \(carried into other frames, textured pixels land a median \d+ brightness "
    r"levels of 255 off their own, \d with the depth read as 1 / depth; the depth fits both\): FIX DEPTH$"
)


def test_disparity_of_views_at_scales_of_their_own_is_refused_by_its_colours():
    """With each view's depth at a scale of its own (per_frame_scale), disparity saved as depth fits
    a short walk forward about as well as depth does (each view's disparity some percent off), and
    passed: the colours tell them, a textured pixel carried with 1 / disparity lands on its own
    colour. Views built into a cache in memory (build_cache) are refused so too."""
    from gen3c.pipelines.camera_video import build_cache, prepare_source

    w2c, K = walk()
    depth = room_depth(w2c, K)
    images = painted(w2c, K, depth)
    for frames, scale in (([0, 3], 1.0), ([0, 2, 4], 1.0), ([0, 2, 4], 0.9), ([0, 2, 4], 1.15)):
        d = depth[frames].clone()
        d[-1] *= scale
        check(d, w2c[frames], K[frames], images=images[frames], per_frame_scale=True)
        with pytest.raises(Gen3cInputError, match=DISPARITY_BY_COLOUR):
            check(1.0 / d, w2c[frames], K[frames], images=images[frames], per_frame_scale=True)
    rgb = images.float() / 127.5 - 1
    views = [prepare_source(rgb[k], 1.0 / depth[k], K[k], (H, W), w2c=w2c[k]) for k in (0, 3)]
    with pytest.raises(Gen3cInputError, match=r"^build_cache views' depth looks like inverse depth \(disparity\) \(carried into other frames"):
        build_cache(views)


def test_colours_that_cannot_tell_the_poses_apart_say_nothing():
    """No refusal where the colours fit both readings alike or none: a flat colour, frames of
    noise, a textured scene under heavy noise, a camera that does not move; nor for a forward walk
    whose depth tells its poses (as given, correct) from their inverses."""
    w2c, K = slide()
    depth = room_depth(w2c, K)
    noise = torch.Generator().manual_seed(0)
    flat = torch.full((T, 3, H, W), 90, dtype=torch.uint8)
    static = torch.randint(0, 256, (T, 3, H, W), generator=noise, dtype=torch.uint8)  # a new picture each frame
    noisy = (painted(w2c, K, depth) + 40 * torch.randn(T, 3, H, W, generator=noise)).clamp(0, 255).to(torch.uint8)
    for images in (flat, static):
        for poses in (w2c, invert_pose(w2c)):
            check(depth, poses, K, images=images)
    check(depth, w2c, K, images=noisy)
    still, K = cameras([[0.3, 0.0, 0.0]] * T, [[0.3, 0.3, 5.0]] * T)
    depth = room_depth(still, K)
    for poses in (still, invert_pose(still)):
        check(depth, poses, K, images=painted(still, K, depth))
    w2c, K = walk()
    depth = room_depth(w2c, K)
    check(depth, w2c, K, images=painted(w2c, K, depth))


PRESET_MOTIONS = {  # (eye, target) of frame i: sideways, down, forward, forward and sideways, a pan while sliding
    "slide": lambda i: ([0.05 * i, 0.0, 0.0], [0.05 * i, 0.0, 5.0]),
    "down": lambda i: ([0.0, 0.04 * i, 0.0], [0.0, 0.04 * i, 5.0]),
    "forward": lambda i: ([0.0, 0.0, 0.1 * i], [0.0, 0.0, 5.0 + 0.1 * i]),
    "diagonal": lambda i: ([0.04 * i, 0.0, 0.06 * i], [0.04 * i, 0.0, 5.0 + 0.06 * i]),
    "pan": lambda i: ([0.03 * i, 0.0, 0.0], [1.0 - 0.1 * i, 0.0, 5.0]),
}


@pytest.mark.parametrize("preset", ["room", "corridor", "street", "objects"])
def test_rendered_scenes_pass_as_given_and_a_swapped_slide_past_objects_is_refused(preset):
    from gen3c.scenes import make_scene, render, source_camera

    K = source_camera(H, W).K.expand(T, 3, 3)
    for seed in (0, 1):
        scene = make_scene(preset, seed=seed)
        for motion in PRESET_MOTIONS.values():
            w2c = look_at(*(torch.tensor(v) for v in zip(*(motion(i) for i in range(T)), strict=True)))
            out = render(scene, Cameras(w2c, K, H, W))
            depth = torch.where(out.mask, out.depth, torch.full_like(out.depth, FAR_DEPTH))
            check(depth, w2c, K, out.mask, images_to_uint8(out.rgb))
            if preset == "objects" and motion is PRESET_MOTIONS["slide"]:
                with pytest.raises(Gen3cInputError, match=BY_COLOUR):
                    check(depth, invert_pose(w2c), K, out.mask, images_to_uint8(out.rgb))


def _rgb(n):
    return np.full((n, H, W, 3), 128, np.uint8)


def test_a_sample_directory_with_camera_to_world_poses_or_disparity_is_refused(tmp_path):
    w2c, K = walk()
    depth = room_depth(w2c, K).numpy()
    read_sample(write_sample(tmp_path / "ok", _rgb(T), depth, depth > 0, w2c, K), (H, W))
    c2w = write_sample(tmp_path / "c2w", _rgb(T), depth, depth > 0, invert_pose(w2c), K)
    with pytest.raises(Gen3cInputError, match=r"c2w' camera.npz w2c look camera-to-world .*: save each matrix's inverse \(np.linalg.inv\) as w2c"):
        read_sample(c2w, (H, W))
    disparity = write_sample(tmp_path / "disp", _rgb(T), 1.0 / depth, depth > 0, w2c, K)
    with pytest.raises(Gen3cInputError, match=r"disp' depth.npz looks like inverse depth \(disparity\) .*: save z-depth"):
        read_sample(disparity, (H, W))


def test_a_sample_directory_sliding_sideways_with_camera_to_world_poses_is_refused(tmp_path):
    """Its depth fits both; its (compressed) video's colours tell them apart."""
    w2c, K = slide()
    depth = room_depth(w2c, K)
    rgb = painted(w2c, K, depth).permute(0, 2, 3, 1).numpy()
    depth = depth.numpy()
    read_sample(write_sample(tmp_path / "ok", rgb, depth, depth > 0, w2c, K), (H, W))
    c2w = write_sample(tmp_path / "c2w", rgb, depth, depth > 0, invert_pose(w2c), K)
    with pytest.raises(Gen3cInputError, match=r"c2w' camera.npz w2c look camera-to-world \(.* brightness levels .*\): save each matrix's inverse"):
        read_sample(c2w, (H, W))


def test_a_vipe_clip_with_world_to_camera_poses_is_refused(tmp_path):
    pytest.importorskip("OpenEXR")
    w2c, K = walk()
    depth = room_depth(w2c, K).numpy()
    read_vipe(write_vipe(tmp_path / "ok", "walk", _rgb(T), depth, w2c, K), (H, W))
    wrong = write_vipe(tmp_path / "w2c", "walk", _rgb(T), depth, invert_pose(w2c), K)  # the writer inverts: w2c on disk
    with pytest.raises(Gen3cInputError, match=r"^ViPE pose/walk.npz poses look world-to-camera .*: ViPE writes camera-to-world poses"):
        read_vipe(wrong, (H, W))


def test_multiview_key_frames_with_camera_to_world_poses_are_refused(tmp_path):
    w2c, K = walk()
    depth = room_depth(w2c, K).numpy()
    read_multiview(write_multiview(tmp_path / "ok.npz", _rgb(T), depth, depth > 0, K, w2c, w2c), (H, W))
    c2w = invert_pose(w2c)
    with pytest.raises(Gen3cInputError, match=r"c2w.npz' w2cs_key_frames look camera-to-world .* \(and in w2cs_all"):
        read_multiview(write_multiview(tmp_path / "c2w.npz", _rgb(T), depth, depth > 0, K, c2w, c2w), (H, W))
    w2c, K = slide()  # the depth fits both: told by the key frames' colours
    depth = room_depth(w2c, K)
    rgb = painted(w2c, K, depth).permute(0, 2, 3, 1).numpy()
    depth = depth.numpy()
    read_multiview(write_multiview(tmp_path / "slide.npz", rgb, depth, depth > 0, K, w2c, w2c), (H, W))
    c2w = invert_pose(w2c)
    with pytest.raises(Gen3cInputError, match=r"slide_c2w.npz' w2cs_key_frames look camera-to-world \(.* brightness levels"):
        read_multiview(write_multiview(tmp_path / "slide_c2w.npz", rgb, depth, depth > 0, K, c2w, c2w), (H, W))


def test_multiview_key_views_whose_depth_differs_in_scale_are_read(tmp_path):
    """Two or three key views with world-to-camera poses whose depth came one photo at a time (an
    estimator's, 10-15 % apart in scale) were refused as inverse depth or camera-to-world poses (a
    view's depth 15 % larger fits its camera moved back as well as the true one moved forward);
    each key view's depth is now taken at its own scale, as build_cache's views are. Camera-to-world
    poses and disparity of such views are still refused, by the depth or by the colours."""
    cases = {  # (motion, key views, the view whose depth is off, by how much)
        "walk, far view deeper": (walk, [0, 1], 1, 1.15),
        "walk, near view shallower": (walk, [0, 1], 0, 0.9),
        "turn": (MOTIONS["turn"], [0, 1], 1, 0.9),
        "walk, three views": (walk, [0, 2, 4], 1, 0.9),
        "orbit, three views": (MOTIONS["orbit"], [0, 2, 4], 2, 1.15),
    }
    for n, (motion, frames, view, scale) in enumerate(cases.values()):
        w2c, K = motion()
        depth = room_depth(w2c, K)
        rgb = painted(w2c, K, depth)[frames].permute(0, 2, 3, 1).numpy()
        w2c, K, depth = w2c[frames], K[frames], depth[frames].numpy()
        depth[view] *= scale
        keys = read_multiview(write_multiview(tmp_path / f"{n}.npz", rgb, depth, depth > 0, K, w2c, w2c), (H, W)).keys
        assert len(keys.depth) == len(frames)
        c2w = invert_pose(w2c)
        with pytest.raises(Gen3cInputError, match=rf"{n}_c2w.npz' w2cs_key_frames look camera-to-world \("):
            read_multiview(write_multiview(tmp_path / f"{n}_c2w.npz", rgb, depth, depth > 0, K, c2w, c2w), (H, W))
    for n, motion in enumerate((walk, MOTIONS["orbit"])):  # disparity: by the colours, by the depth
        w2c, K = motion()
        depth = room_depth(w2c, K)[[0, 3]]
        rgb = painted(w2c[[0, 3]], K[[0, 3]], depth).permute(0, 2, 3, 1).numpy()
        depth[1] *= 0.9
        disparity = 1.0 / depth.numpy()
        with pytest.raises(Gen3cInputError, match=rf"disparity{n}.npz' depth_key_frames looks like inverse depth \(disparity\) \("):
            read_multiview(write_multiview(tmp_path / f"disparity{n}.npz", rgb, disparity, disparity > 0, K[[0, 3]], w2c[[0, 3]], w2c), (H, W))


NO_TEXTURE = r"read inverted; the images carry no texture, so every frame's depth is taken at one scale\): "


def test_views_of_one_colour_take_their_depth_at_one_scale(tmp_path):
    """Each view's depth at a scale of its own leaves the depth of a walk forward nothing to tell its
    poses from their inverses by (the inverted poses fit with the cameras hardly moving); only the
    colours can, and images of one colour (or of one colour under noise) tell nothing, nor can such
    images be where per-photo depth came from: their views' depth is taken at one scale, and
    camera-to-world poses of a walk forward are refused by the depth, saying why. build_cache's
    views of one colour passed so; a multi-view file's are refused as before. A picture a tenth of
    which is textured is texture: a view's depth 15 % off passes."""
    from gen3c.pipelines.camera_video import build_cache, prepare_source

    w2c, K = walk()
    depth = room_depth(w2c, K)
    noise = torch.Generator().manual_seed(0)
    flat = torch.full((T, 3, H, W), 90, dtype=torch.uint8)
    noisy = (90 + 2 * torch.randn(T, 3, H, W, generator=noise)).round().to(torch.uint8)
    for images in (flat, noisy):
        for frames in ([0, 3], [0, 2, 4]):
            check(depth[frames], w2c[frames], K[frames], images=images[frames], per_frame_scale=True)
            with pytest.raises(Gen3cInputError, match=r"^POSES look camera-to-world \(.* " + NO_TEXTURE + "FIX POSES$"):
                check(depth[frames], invert_pose(w2c[frames]), K[frames], images=images[frames], per_frame_scale=True)
    rgb = flat.float() / 127.5 - 1
    c2w = [prepare_source(rgb[k], depth[k], K[k], (H, W), w2c=invert_pose(w2c[k])) for k in (0, 3)]
    with pytest.raises(Gen3cInputError, match=r"^build_cache views' poses \(prepare_source w2c=\) look camera-to-world \(.* " + NO_TEXTURE):
        build_cache(c2w)
    frames = [0, 3]
    flat_rgb, d = flat[frames].permute(0, 2, 3, 1).numpy(), depth[frames].numpy()
    c2w = invert_pose(w2c[frames])
    with pytest.raises(Gen3cInputError, match=r"flat.npz' w2cs_key_frames look camera-to-world \(.* " + NO_TEXTURE):
        read_multiview(write_multiview(tmp_path / "flat.npz", flat_rgb, d, d > 0, K[frames], c2w, c2w), (H, W))
    patch = flat.clone()
    patch[..., : W // 10] = painted(w2c, K, depth)[..., : W // 10]  # a tenth of each picture textured
    scaled = depth[[0, 1]].clone()
    scaled[1] *= 1.15
    check(scaled, w2c[[0, 1]], K[[0, 1]], images=patch[[0, 1]], per_frame_scale=True)


def test_views_built_into_a_cache_in_memory_with_camera_to_world_poses_are_refused():
    """prepare_source(…, w2c=c2w) for two views and build_cache([a, b]) built a cache of points in
    no camera's frame without a word (a multi-view file's key views were checked, the same views in
    memory were not); now refused, by the depth or, where the depth fits both (each view's depth at
    its own scale: a walk forward; a sideways slide), by the colours. World-to-camera views pass, and
    check_conventions=False (training's views, checked where they were read) skips it."""
    from gen3c.pipelines.camera_video import build_cache, prepare_source

    by_depth, by_colours = r"one frame's depth carried into another", "carried into other frames, textured pixels land"
    for motion, by in ((MOTIONS["orbit"], by_depth), (walk, by_colours), (slide, by_colours)):
        w2c, K = motion()
        depth = room_depth(w2c, K)
        images = painted(w2c, K, depth).float() / 127.5 - 1
        given, c2w = ([prepare_source(images[k], depth[k], K[k], (H, W), w2c=poses[k]) for k in (0, 3)] for poses in (w2c, invert_pose(w2c)))
        assert len(build_cache(given).views) == 2
        with pytest.raises(Gen3cInputError, match=(
            rf"^build_cache views' poses \(prepare_source w2c=\) look camera-to-world \({by} .*\): pass each view's world-to-camera pose: "
            r"invert_pose\(c2w\), or opengl_to_opencv\(c2w\) for an OpenGL / nerfstudio one$")):  # fmt: skip
            build_cache(c2w)
        assert len(build_cache(c2w, check_conventions=False).views) == 2


def test_views_in_memory_whose_depth_differs_in_scale_are_not_refused_for_their_poses():
    """Two views with world-to-camera poses whose depth came one photo at a time (an estimator's:
    10-20 % apart in scale) were refused by build_cache as camera-to-world poses or disparity (a
    view's depth 10 % larger fits its camera moved back as well as the true one moved forward);
    each view's depth is now taken at its own scale. Camera-to-world poses of such views are still
    refused, by the depth or the colours."""
    from gen3c.pipelines.camera_video import build_cache, prepare_source

    for motion, scale in ((walk, 1.1), (MOTIONS["turn"], 1.2), (MOTIONS["turn"], 0.9)):
        w2c, K = motion()
        depth = room_depth(w2c, K)
        images = painted(w2c, K, depth).float() / 127.5 - 1
        depth[1] *= scale
        given, c2w = ([prepare_source(images[k], depth[k], K[k], (H, W), w2c=poses[k]) for k in (0, 1)] for poses in (w2c, invert_pose(w2c)))
        assert len(build_cache(given).views) == 2
        with pytest.raises(Gen3cInputError, match=r"^build_cache views' poses \(prepare_source w2c=\) look camera-to-world \("):
            build_cache(c2w)


def test_the_cli_refuses_a_camera_to_world_sample_in_one_line_and_writes_nothing(tmp_path):
    from typer.testing import CliRunner

    from gen3c.cli import app

    w2c, K = walk()
    depth = room_depth(w2c, K).numpy()
    folder = write_sample(tmp_path / "c2w", _rgb(T), depth, depth > 0, invert_pose(w2c), K)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["generate", "--input_image_path", str(folder), "--resolution", f"{H}x{W}",
                                   "--num_video_frames", str(T), "--video_save_folder", str(out)])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "camera.npz w2c look camera-to-world" in res.output and "Traceback" not in res.output
    assert not out.exists() or not any(out.iterdir())


def test_a_legacy_pt_sample_with_camera_to_world_poses_is_refused(tmp_path):
    w2c, K = walk()
    depth = room_depth(w2c, K)
    image = torch.zeros(T, 3, H, W)
    path = tmp_path / "c2w.pt"
    torch.save((image, depth[:, None], torch.ones(T, 1, H, W), invert_pose(w2c), K), path)
    with pytest.raises(Gen3cInputError, match=r"c2w.pt' w2c look camera-to-world .*: save each matrix's inverse"):
        read_sample(path, (H, W))
    torch.save((image, depth[:, None], torch.ones(T, 1, H, W), w2c, K), path)
    assert len(read_sample(path, (H, W))) == T
