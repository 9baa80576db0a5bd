"""The preview generator: no holes, frame 0 is the source, fills are steady over time."""

import warnings

import cv2
import numpy as np
import pytest
import torch

from gen3c.cache import BufferRenders, Cache3D, forward_warp
from gen3c.cameras import Cameras, intrinsics_from_fov, look_at
from gen3c.pipelines.camera_video import build_cache, generate_video, prepare_source, preset_cameras
from gen3c.pipelines.preview import (
    TILE_PIXELS,
    BandExtension,
    GrowingCloud,
    PreviewGenerator,
    band_tiles,
    band_window,
    check_extension_fits,
    close_cracks,
    extend_past_frame,
    extension_bytes,
    far_side_of_holes,
    fill_holes,
    filtered_smooth_points,
    foreground_near_holes,
    push_pull,
    sides_seen_past_frame,
    smooth_surface_pixels,
)


def run(box_scene, trajectory="left", n=25):
    _, _, image, depth = box_scene
    K = intrinsics_from_fov(60.0, *image.shape[-2:])
    src = prepare_source(image, depth, K, (96, 160))
    cams = preset_cameras(src, trajectory, "center_facing", n, 0.3)
    cache = build_cache([src])
    return src, generate_video(cache, cams, PreviewGenerator(), first_frame=src.image)


def test_preview_fills_every_hole_and_keeps_frame_zero(box_scene):
    src, result = run(box_scene)
    frames, masks = result.frames, result.buffers.masks
    assert frames.shape == (25, 3, 96, 160)
    assert torch.isfinite(frames).all() and frames.min() >= -1 and frames.max() <= 1
    assert torch.allclose(frames[0], src.image, atol=1e-5)
    # The last frame has real holes (disocclusion + border) and the preview filled them with
    # colours near the far wall's, not black.
    holes = masks[-1, 0, 0] == 0
    assert holes.float().mean() > 0.02
    assert (frames[-1][:, holes] > -0.95).any(dim=0).float().mean() > 0.99
    # Seen pixels are the cache render itself.
    seen = masks[-1, 0, 0] > 0
    assert torch.allclose(frames[-1][:, seen], result.buffers.colors[-1, 0][:, seen], atol=1e-5)


def test_frame_zero_is_the_source_image_where_the_cache_leaves_cracks_too(room_sample):
    """A round object's depth edge leaves a jagged hole in the cache's render of the source
    camera; the crack closing filled its notches with their neighbours' mean, so frame 0 showed
    those blends (379 pixels off by up to 0.74 at the ball's rim here) instead of the image."""
    src = prepare_source(*room_sample, (96, 160))
    cams = preset_cameras(src, "left", "center_facing", 3, 0.3)
    frames = generate_video(build_cache([src]), cams, PreviewGenerator(), first_frame=src.image).frames
    assert torch.allclose(frames[0], src.image, atol=1e-5)


def test_preview_fill_is_temporally_steady(box_scene):
    # A camera standing still must give identical frames: the fill of frame t is rendered
    # from the fill cloud in frame t + 1, not inpainted anew.
    _, _, image, depth = box_scene
    K = intrinsics_from_fov(60.0, 96, 160)
    src = prepare_source(image, depth, K, (96, 160))
    cams = preset_cameras(src, "left", "center_facing", 20, 0.3)
    hold = cams[-1]
    still = Cameras.cat([cams, hold, hold, hold])
    result = generate_video(build_cache([src]), still, PreviewGenerator(), first_frame=src.image)
    assert torch.allclose(result.frames[-1], result.frames[-2], atol=2e-2)
    assert torch.allclose(result.frames[-2], result.frames[-3], atol=2e-2)


def test_fill_holes_takes_background_depth():
    depth = np.full((60, 120), 4.0, np.float32)
    depth[10:50, 60:100] = 2.0  # foreground box right of the hole
    holes = np.zeros_like(depth, bool)
    holes[10:50, 40:60] = True
    depth[holes] = 0
    rgb = np.zeros((60, 120, 3), np.float32)
    rgb[depth == 4.0] = (-1, -1, 1)
    rgb[depth == 2.0] = (1, -1, -1)
    out_rgb, out_depth = fill_holes(rgb, depth, holes, reach=8)
    assert np.allclose(out_depth[holes], 4.0)
    # The fill continues the blue wall; the red box does not bleed in at all.
    assert np.allclose(out_rgb[holes], (-1, -1, 1), atol=1e-5)
    assert np.array_equal(out_rgb[~holes], rgb[~holes]) and np.array_equal(out_depth[~holes], depth[~holes])


def test_push_pull_keeps_known_pixels_and_fills_a_constant_exactly():
    rng = np.random.default_rng(0)
    known = rng.random((37, 53)) > 0.7
    values = np.where(known[..., None], 0.25, rng.random((37, 53, 2))).astype(np.float32)
    out = push_pull(values, known)
    assert np.allclose(out, 0.25, atol=1e-5)  # every hole takes the one colour around it
    ramp = np.broadcast_to(np.linspace(0, 1, 53, dtype=np.float32), (37, 53))[..., None].copy()
    out = push_pull(ramp, known)
    assert np.array_equal(out[known], ramp[known])
    assert np.abs(out - ramp).max() < 0.2  # a smooth field is continued smoothly


def test_hole_fill_never_reads_what_the_holes_hold():
    """NaN or inf in the unknown pixels (a common way to mark them) came back as NaN holes: the
    pyramid premultiplied every pixel by its weight, and NaN · 0 is NaN."""
    rng = np.random.default_rng(1)
    known = rng.random((19, 23)) > 0.4
    values = rng.random((19, 23, 3)).astype(np.float32)
    depth = (1 + rng.random((19, 23))).astype(np.float32)
    clean = push_pull(np.where(known[..., None], values, 0), known)
    clean_fill = fill_holes(np.where(known[..., None], values, 0), np.where(known, depth, 0), ~known, 2)
    for bad in (np.nan, np.inf, -np.inf):
        assert np.array_equal(push_pull(np.where(known[..., None], values, bad), known), clean)
        filled = fill_holes(np.where(known[..., None], values, bad), np.where(known, depth, bad), ~known, 2)
        assert all(np.array_equal(a, b) for a, b in zip(filled, clean_fill, strict=True))


def test_extend_past_frame_continues_the_border_and_fades_its_detail():
    H, W, pad = 20, 30, 16
    constant = np.full((H, W, 2), 0.3, np.float32)
    assert np.allclose(extend_past_frame(constant, pad), 0.3, atol=1e-6)
    stripes = np.zeros((H, W, 1), np.float32)
    stripes[:, ::2] = 1.0  # one-pixel columns: the finest detail
    stripes[:, :, 0] += np.linspace(0, 1, H, dtype=np.float32)[:, None]  # and a smooth gradient down
    out = extend_past_frame(stripes, pad)
    assert out.shape == (H + 2 * pad, W + 2 * pad, 1)
    assert np.array_equal(out[pad : pad + H, pad : pad + W], stripes)
    # The first column outside follows the border column's gradient row by row: nearest content.
    assert np.allclose(np.diff(out[pad + 4 : pad + H - 4, pad - 1, 0]), 1 / (H - 1), atol=1e-4)
    far_above = out[0, pad + 4 : pad + W - 4, 0]  # pad pixels above the frame
    assert np.abs(np.diff(far_above, 2)).max() < 0.01  # the stripes' detail (second differences of 2) is gone
    far_left = out[pad + 2 : pad + H - 2, 0, 0]  # pad pixels left of the frame: the gradient goes on, blurred
    assert np.all(np.diff(far_left) > 0)


def test_foreground_near_holes_marks_the_near_side_only():
    depth = np.full((40, 140), 5.0, np.float32)
    depth[:, 35:] = 2.0  # an occluder right of a hole 7 pixels wide
    holes = np.zeros_like(depth, bool)
    holes[:, 28:35] = True
    depth[holes] = 0
    reach = 6
    near = foreground_near_holes(depth, ~holes, holes, reach)
    # The wall's depth spreads reach + twice the hole's width from its edge (col 27), rounded
    # up to reach · 2^k = 24: the occluder is flagged up to col 51, at least reach + the
    # hole's width past its own edge, and no farther; the wall is never flagged.
    assert near[:, 35 : 35 + reach + 7].all() and near[:, 35:52].all() and not near[:, 52:].any()
    assert not near[:, :28].any()
    assert not foreground_near_holes(depth, ~holes, np.zeros_like(holes), reach).any()


WALL = (-0.6, -0.2, 0.8)


def wall_and_square(H, W, texture=None):
    """A far wall (depth 4, colour :data:`WALL`) behind a red square (depth 2) spanning the middle
    half of the rows and columns 3/8 … 3/4, seen by an identity camera; with ``texture``
    ((3, H, W)), that wall alone."""
    K = intrinsics_from_fov(60.0, H, W)
    depth = torch.full((H, W), 4.0)
    if texture is not None:
        return texture, depth, K
    image = torch.tensor(WALL).view(3, 1, 1).expand(3, H, W).clone()
    rows, cols = slice(H // 4, 3 * H // 4), slice(3 * W // 8, 3 * W // 4)
    image[:, rows, cols] = torch.tensor([0.9, -0.8, -0.8]).view(3, 1, 1)
    depth[rows, cols] = 2.0
    return image, depth, K


def sliding_cameras(K, H, W, shifts):
    """Cameras at x = ``shifts`` (world units), looking down +z like the source."""
    w2c = torch.eye(4).repeat(len(shifts), 1, 1)
    w2c[:, 0, 3] = -torch.tensor(shifts)  # the camera moves to +x: the scene slides left
    return Cameras(w2c, K, H, W)


def test_disocclusion_takes_the_wall_colour_not_the_foreground_ghost():
    # The camera slides right past a large red square in front of a uniform blue wall: the wall
    # the square hid opens up frame after frame. By construction every pixel outside the
    # square's image is wall, so every fill of a disocclusion must be the wall's colour — no
    # red ghost trailing the square (the old inpainting left one of up to 0.69).
    H, W = 72, 112
    image, depth, K = wall_and_square(H, W)
    shifts = [0.03 * t for t in range(16)]
    cams = sliding_cameras(K, H, W, shifts)
    cache = build_cache([prepare_source(image, depth, K, (H, W))])
    buffers = cache.render(cams)
    frames = PreviewGenerator().generate(cache, cams, image, buffers=buffers)
    fx = float(K[0, 0])
    wall = torch.tensor(WALL).view(3, 1, 1)
    u = torch.arange(W).expand(H, W)
    for t in range(1, len(cams)):
        square = torch.zeros(H, W, dtype=torch.bool)  # the square moves left by fx · shift / 2
        square[17:55, max(0, int(41 - fx * shifts[t] / 2)) : int(85 - fx * shifts[t] / 2) + 1] = True
        filled = (buffers.masks[t, 0, 0] == 0) & ~square
        in_source = u + fx * shifts[t] / 4 < W - 0.5  # the wall behind lies inside the source frame
        error = (frames[t] - wall).abs().amax(dim=0)
        assert error[filled & in_source].max() < 0.01, t
        # Past the source's frame the fill extends the neighbourhood, the square a little too.
        assert (error * (filled & ~in_source)).max() < 0.1, t
    assert int((filled & in_source).sum()) > 300  # a real disocclusion


def test_view_past_the_frame_is_extended_smoothly_without_streaks():
    # A checkerboard wall (8-pixel cells), the camera slides left about a pixel per frame: a
    # strip beyond the source's left border opens. Filling it strip by strip, each a copy of the
    # column next to it, draws streaks: rows carry the border's vertical pattern far out (the
    # old inpainting kept 26–100 % of the texture's vertical variation there). The fill must
    # instead fade smoothly, in both directions, to the content's mean colour.
    H, W = 64, 96
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    checker = ((yy // 8 + xx // 8) % 2).float()
    light, dark = torch.tensor([0.8, 0.6, 0.2]), torch.tensor([-0.6, -0.4, 0.0])
    texture = (dark.view(3, 1, 1) + (light - dark).view(3, 1, 1) * checker).contiguous()
    image, depth, K = wall_and_square(H, W, texture=texture)
    cams = sliding_cameras(K, H, W, [-0.05 * t for t in range(16)])
    cache = build_cache([prepare_source(image, depth, K, (H, W))])
    buffers = cache.render(cams)
    frames = PreviewGenerator().generate(cache, cams, image, buffers=buffers)
    strip = (buffers.masks[-1, 0, 0] == 0).all(dim=0).nonzero().flatten()
    assert strip.min() == 0 and len(strip) >= 12  # the columns beyond the frame's left border
    outer = frames[-1][:, :, : len(strip) - 4]  # 4 or more pixels away from the content
    vertical = (texture[:, 1:] - texture[:, :-1]).abs().mean()
    assert (outer[:, 1:] - outer[:, :-1]).abs().mean() < 0.15 * vertical  # no streaks
    assert (outer[:, :, 1:] - outer[:, :, :-1]).abs().mean() < 0.15 * vertical
    assert torch.allclose(outer.mean(dim=(1, 2)), (light + dark) / 2, atol=0.05)


def test_smooth_surface_pixels_keep_planes_and_drop_depth_edges():
    H, W = 40, 50
    v = torch.arange(H, dtype=torch.float32)[:, None].expand(H, W)
    u = torch.arange(W, dtype=torch.float32)[None].expand(H, W)
    plane = 1.0 / (0.05 + 0.01 * v + 0.002 * u)  # a steep tilted plane: inverse depth is affine
    smooth = smooth_surface_pixels(plane)
    assert smooth.all()
    stepped = plane.clone()
    stepped[:, 25:] *= 0.5  # a depth edge between columns 24 and 25
    smooth = smooth_surface_pixels(stepped)
    assert not smooth[:, 23:27].any()  # both sides of the edge and their neighbours
    assert smooth[:, :22].all() and smooth[:, 28:].all()


def test_preview_runs_on_frames_under_3_pixels_wide_or_high():
    """Second differences need 3 pixels; a thinner image (prepare_source takes any positive size)
    made the preview fail with torch's padding error."""
    line = 1.0 / (0.2 + 0.05 * torch.arange(7.0))
    assert smooth_surface_pixels(line[None]).all() and smooth_surface_pixels(line[:, None]).all()
    step = torch.cat([line[:4], line[4:] * 0.5])
    assert not smooth_surface_pixels(step[None])[0, 2:6].any()
    image = torch.linspace(-1, 1, 3 * 8 * 8).reshape(3, 8, 8)
    for H, W in ((1, 1), (2, 3), (5, 1)):
        src = prepare_source(image, torch.full((8, 8), 2.0), intrinsics_from_fov(60.0, 8, 8), (H, W), "stretch")
        cameras = sliding_cameras(src.K, H, W, [0.0, 0.01])
        frames = generate_video(build_cache([src]), cameras, PreviewGenerator(), first_frame=src.image).frames
        assert frames.shape == (2, 3, H, W) and torch.allclose(frames[0], src.image, atol=1e-4)


def panned_plane(degrees):
    """A plane of one colour (the source looks down +z, 56° wide) and cameras at the origin
    turned by ``degrees`` about the vertical: (cache, cameras, colour (3, H, W))."""
    H, W = 24, 32
    K = intrinsics_from_fov(56.0, H, W)
    colour = torch.tensor([0.7, -0.5, 0.6])[:, None, None].expand(3, H, W)
    cache = build_cache([prepare_source(colour, torch.full((H, W), 3.0), K, (H, W))])
    angles = torch.deg2rad(torch.tensor(degrees, dtype=torch.float32))
    targets = torch.stack([angles.sin(), torch.zeros_like(angles), angles.cos()], 1)
    return cache, Cameras(look_at(torch.zeros(len(angles), 3), targets), K, H, W), colour


def test_a_frame_that_sees_nothing_leaves_no_grey_wall_for_the_frames_after_it():
    """A camera panning all the way round: at 180° neither the cache nor the fill sees anything,
    so the frame is flat grey; that grey (at an invented depth of 1) joined the fill cloud, and
    at 320°, turned back towards the scene, it showed as a grey band over an eighth of the frame."""
    cache, cameras, colour = panned_plane([0, 40, 90, 180, 270, 320, 360])
    frames = PreviewGenerator().generate(cache, cameras, colour)
    assert torch.equal(frames[3], torch.zeros_like(colour))  # nothing to fill from: neutral grey
    for t in (0, 1, 2, 5, 6):  # everything else is the scene's one colour, filled or seen
        assert torch.allclose(frames[t], colour, atol=1e-3), t


def test_a_first_frame_that_sees_nothing_extends_no_grey_band_past_it():
    """Frame 0 turned away from the scene: the band past its frame was extended from its grey
    fill and lifted at depth 1, so the frames turning towards the scene showed it in their holes
    (408 grey pixels of 768 at 45°) instead of filling them from the scene they see."""
    cache, cameras, colour = panned_plane([90, 70, 45, 20, 0])
    frames = PreviewGenerator().generate(cache, cameras, None)
    assert torch.equal(frames[0], torch.zeros_like(colour))
    for t in (2, 3, 4):
        assert torch.allclose(frames[t], colour, atol=1e-3), t


def test_preview_puts_back_filtered_smooth_surfaces_but_not_masked_pixels():
    # A steep floor (the 5×5 depth-edge filter drops it) under a wall; the preview shows the
    # floor from the source itself, so rendering from the source camera gives the source back.
    H, W = 48, 64
    K = intrinsics_from_fov(60.0, H, W)
    v = torch.arange(H, dtype=torch.float32)[:, None].expand(H, W)
    depth = torch.where(v < 16, torch.tensor(6.0), 1.0 / (1 / 6.0 + 0.03 * (v - 15)))
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    image = torch.stack([((xx // 3 + yy // 3) % 2).float() * 1.6 - 0.8, torch.zeros(H, W), v / H - 0.5])
    mask = torch.ones(H, W, dtype=torch.bool)
    mask[30:40, 5:20] = False  # pixels the caller left out: never put back
    source = prepare_source(image, depth, K, (H, W), valid=mask)
    cache = build_cache([source])
    view = cache.views[0]
    assert view.filtered[0].sum() > 0.3 * H * W and not view.filtered[0][30:40, 5:20].any()
    floor = view.filtered[0] & smooth_surface_pixels(source.depth)
    assert floor.sum() > 0.25 * H * W
    points, colors = filtered_smooth_points(cache)
    assert torch.equal(points, view.points[0][floor]) and torch.equal(colors, view.colors[0][floor])
    frame = PreviewGenerator().generate(cache, sliding_cameras(K, H, W, [0.0]), None)[0]
    assert torch.allclose(frame[:, floor], image[:, floor], atol=1e-4)
    assert not torch.allclose(frame[:, 31:39, 6:19], image[:, 31:39, 6:19], atol=0.05)


def test_a_video_rendered_along_its_own_cameras_gives_every_frame_back_on_its_filtered_smooth_surfaces():
    # A 4D (video) view of the steep floor above, its texture changing frame by frame and its
    # camera sliding: rendered along its own cameras, frame t shows source frame t's floor (the
    # depth-edge filter drops it; the preview puts it back from frame t). Only static views were
    # put back: frames after the first showed the wall's colour smeared over the floor.
    H, W, T = 48, 64, 3
    K = intrinsics_from_fov(60.0, H, W)
    v = torch.arange(H, dtype=torch.float32)[:, None].expand(H, W)
    depth = torch.where(v < 16, torch.tensor(6.0), 1.0 / (1 / 6.0 + 0.03 * (v - 15)))
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    images = torch.stack([
        torch.stack([((xx // 3 + yy // 3 + t) % 2).float() * 1.6 - 0.8, torch.full((H, W), 0.3 * t - 0.3), v / H - 0.5])
        for t in range(T)
    ])  # fmt: skip
    cams = sliding_cameras(K, H, W, [0.0, 0.05, 0.1])
    cache = Cache3D(max_buffers=1)
    cache.add_view(images, depth.expand(T, H, W), cams.K, cams.w2c)
    floor = cache.views[0].filtered & smooth_surface_pixels(depth)
    assert floor.sum() > 0.25 * H * W * T
    frames = PreviewGenerator().generate(cache, cams, images[0])
    for t in range(T):
        assert torch.allclose(frames[t][:, floor[t]], images[t][:, floor[t]], atol=1e-4), t


def test_close_cracks_fills_single_pixel_gaps():
    mask = torch.ones(10, 10, dtype=torch.bool)
    mask[5, 5] = False
    mask[0:3, 7:10] = False  # a real hole (3×3 at the corner) stays open
    color = torch.ones(3, 10, 10) * 0.5
    depth = torch.full((10, 10), 3.0)
    c, d, m = close_cracks(color * mask, depth * mask, mask)
    assert m[5, 5] and torch.allclose(c[:, 5, 5], torch.full((3,), 0.5)) and d[5, 5] == 3.0
    assert not m[1, 8]


def test_close_cracks_within_one_surface_only():
    # Dotted lines of a surface seen from a new angle: 3-pixel gaps between columns at depth 2.
    mask = torch.zeros(12, 20, dtype=torch.bool)
    mask[:, ::4] = True
    depth = torch.full((12, 20), 2.0) * mask
    color = torch.full((3, 12, 20), 0.4) * mask
    c, d, m = close_cracks(color, depth, mask, size=5, depth_range=0.05)
    assert m[:, :17].all() and torch.allclose(c[:, :, :17], torch.tensor(0.4)) and torch.allclose(d[:, :17], torch.tensor(2.0))
    # Between a near (2) and a far (4) surface a gap pixel whose 5×5 window holds both stays
    # open for the background fill; its neighbours see one surface each and take its depth.
    depth[:, 8] = 4.0
    _, d, m = close_cracks(color, depth, mask, size=5, depth_range=0.05)
    assert m[:, 1:4].all() and not m[:, 6].any() and not m[:, 10].any()
    assert torch.allclose(d[:, 5], torch.tensor(2.0)) and torch.allclose(d[:, 7], torch.tensor(4.0))


# The optimised paths against the straightforward ones they replaced (bit for bit) ---------------


def speckled_frame(seed: int, H: int = 40, W: int = 56):
    """A render-like frame: two depth layers, colour in [−1, 1], −1 and depth 0 where uncovered,
    single-pixel cracks and a few larger holes."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(H, W, generator=g) > 0.08
    mask[10:16, 20:30] = False
    depth = torch.where(torch.arange(W) < W // 2, 2.0, 5.0).expand(H, W) + torch.rand(H, W, generator=g) * 0.05
    color = torch.rand(3, H, W, generator=g) * 2 - 1
    return torch.where(mask, color, torch.tensor(-1.0)), torch.where(mask, depth, torch.tensor(0.0)), mask


def close_cracks_reference(color, depth, mask, size=3, depth_range=None):
    covered = mask.numpy().astype(np.uint8)
    kernel = np.ones((size, size), np.uint8)
    gaps = cv2.morphologyEx(covered, cv2.MORPH_CLOSE, kernel).astype(bool) & ~mask.numpy()
    if depth_range is not None:
        d = depth.numpy()
        nearest = cv2.erode(np.where(mask.numpy(), d, np.float32(np.inf)), kernel)
        farthest = cv2.dilate(np.where(mask.numpy(), d, np.float32(0)), kernel)
        with np.errstate(invalid="ignore", over="ignore"):
            gaps &= farthest <= (1 + depth_range) * nearest
    stacked = np.concatenate([(color * mask).permute(1, 2, 0).numpy(), (depth * mask)[..., None].numpy(), covered[..., None].astype(np.float32)], 2)
    box = cv2.blur(stacked, (size, size), borderType=cv2.BORDER_CONSTANT)
    mean = torch.from_numpy(box[..., :4] / np.maximum(box[..., 4:], 1e-6)).permute(2, 0, 1)
    cracks = torch.from_numpy(gaps)
    return torch.where(cracks, mean[:3], color), torch.where(cracks, mean[3], depth), mask | cracks


def test_close_cracks_equals_the_whole_image_mean():
    for seed in range(3):
        frame = speckled_frame(seed)
        for args in ((3, None), (5, 0.05)):
            got, want = close_cracks(*frame, *args), close_cracks_reference(*frame, *args)
            assert not torch.equal(want[2], frame[2])  # some cracks closed
            assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def reach_reference(depth, known, holes, reach):
    """The holes' border pixels and the farthest border depth within each one's reach (0 beyond
    every reach), with every dilation over the whole image."""
    count, labels = cv2.connectedComponents(holes.astype(np.uint8), connectivity=8)
    inside = cv2.distanceTransform(holes.astype(np.uint8), cv2.DIST_L2, 3)
    half_width = np.zeros(count, np.float32)
    np.maximum.at(half_width, labels[holes], inside[holes])
    scale = np.ceil(np.log2(np.maximum((reach + 4 * half_width) / reach, 1.0))).astype(int)
    near_label = cv2.dilate(labels.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int64)
    border = known & (near_label > 0)
    farthest = np.zeros(depth.shape, np.float32)
    for k in np.unique(scale[1:]):
        group = border & (scale[near_label] == k)
        size = 2 * reach * 2**k + 1
        np.maximum(farthest, cv2.dilate(np.where(group, depth, 0).astype(np.float32), np.ones((size, size), np.uint8)), out=farthest)
    return border, farthest


def foreground_reference(depth, known, holes, reach, ratio=0.9):
    """foreground_near_holes with every dilation over the whole image."""
    return known & (depth < ratio * reach_reference(depth, known, holes, reach)[1])


def hole_sides_reference(depth, known, holes, reach, ratio=0.9):
    """(foreground_near_holes, far_side_of_holes) over the whole image, each row's and column's
    runs of holes walked pixel by pixel."""
    border, farthest = reach_reference(depth, known, holes, reach)
    near_end, far_end = np.zeros_like(known), np.zeros_like(known)
    for d, k, h, near, far in ((depth, known, holes, near_end, far_end), (depth.T, known.T, holes.T, near_end.T, far_end.T)):
        for y, line in enumerate(h):
            x = 0
            while x < len(line):
                if not line[x]:
                    x += 1
                    continue
                before = x - 1
                while x < len(line) and line[x]:
                    x += 1
                # Each run is paired with its own two ends, also where one known pixel ends two runs.
                if before >= 0 and x < len(line) and k[y, before] and k[y, x]:
                    for a, b in ((before, x), (x, before)):
                        if d[y, a] < ratio * d[y, b]:
                            near[y, a] = far[y, b] = True
    far_end &= ~near_end
    # Far ends within an eighth of the reach of an occluder's outline (the near side of a depth edge) are dropped.
    occluding = known & (depth < ratio * cv2.dilate(np.where(known, depth, 0).astype(np.float32), np.ones((3, 3), np.uint8)))
    outline = 2 * max(1, reach // 8) + 1
    far_end &= cv2.dilate(occluding.astype(np.uint8), np.ones((outline, outline), np.uint8)) == 0
    # The far side: the known pixels within reach whose nearest border pixel is a far end.
    _, cell = cv2.distanceTransformWithLabels((~border).astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    far_side = known & np.isin(cell, cell[border & far_end]) & (farthest > 0)
    return known & (depth < ratio * farthest) & (farthest > 0) & ~far_side, far_side


def test_hole_fill_equals_push_pull_over_the_whole_image():
    for seed in range(4):
        color, depth, mask = (x.numpy() for x in speckled_frame(seed, 48, 96))
        holes = ~mask
        holes[:, :3] = True  # a hole at the border
        if seed == 3:  # one hole across the depth edge: its dilation covers part of the image only
            holes[:] = False
            holes[20:26, 42:52] = True
            depth = np.where(holes, 0, np.where(np.arange(96) < 48, 2.0, 5.0)).astype(np.float32)
        color = np.ascontiguousarray(color.transpose(1, 2, 0))
        for reach in (2, 5):
            near, far = foreground_near_holes(depth, ~holes, holes, reach), far_side_of_holes(depth, ~holes, holes, reach)
            assert near.any() and np.array_equal(near, foreground_reference(depth, ~holes, holes, reach) & ~far)
            sources = ~holes & ~near
            values = np.concatenate([color, depth[..., None], far[..., None]], axis=2)
            filled = push_pull(values, sources, depth_channel=3, kept_channel=4)
            got_color, got_depth = fill_holes(color, depth, holes, reach)
            assert np.array_equal(got_color, np.where(holes[..., None], filled[..., :3], color))
            assert np.array_equal(got_depth, np.where(holes, filled[..., 3], depth))


def holes_by_hand():
    """A 37 × 53 view (odd sizes, so the holes start on odd rows and columns too): a far wall left of
    column 20, a near floor right of it below row 15, a farther shelf above; holes at the top left
    corner and the right edge (runs with one end), a hole one known pixel after another along its
    rows, two holes diagonally apart that border the same pixels, a wide hole (a larger reach than
    the thin ones), a hole beside the floor's outline, and two pixels that are neither known nor holes."""
    h, w = 37, 53
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    depth = (np.where(cols < 20, 6.0, np.where(rows < 15, 9.0, 3.0)) + 0.01 * rows + 0.002 * cols).astype(np.float32)
    holes = np.zeros((h, w), bool)
    holes[0:4, 0:3] = True
    holes[9:20, 17:20] = True
    holes[9:20, 21:24] = True
    holes[25:28, 33] = True
    holes[28:31, 35] = True
    holes[29:36, 39:46] = True
    holes[30:36, 50:53] = True
    holes[13:17, 5:9] = True
    depth[holes] = 0
    known = ~holes
    known[2, 10] = known[31, 12] = False
    return depth, known, holes


def holes_sharing_a_border():
    """A near view (depth 3) with a far column (depth 9) between a wide hole (rows 5 to 13) and a
    thin one (a row higher): the column borders both and takes the reach of the larger label.
    connectedComponents numbers holes by 2 × 2 blocks from the image's top left, so the wide
    hole's first block comes first (label 1) and the column takes the thin hole's shorter reach."""
    depth = np.full((30, 60), 3.0, np.float32)
    depth[:, 20] = 9.0
    holes = np.zeros(depth.shape, bool)
    holes[5:14, 10:20] = True
    holes[4:14, 21] = True
    depth[holes] = 0
    return depth, ~holes, holes


def test_hole_sides_equal_the_whole_image_algorithm():
    """foreground_near_holes and far_side_of_holes (each step over the holes' box, a few pixels
    around each far end, the box the holes' reach covers) equal the same algorithm over the whole
    image with every run walked pixel by pixel, on hand-made holes and on render-like frames."""
    cases = [(*holes_by_hand(), reach) for reach in (2, 3, 8)] + [(*holes_sharing_a_border(), 2)]
    color, depth, holes = floor_beside_a_box()
    cases += [(depth, ~holes, holes, 4), (depth, ~holes, holes, 16)]
    for seed in range(3):
        _, depth, mask = (x.numpy() for x in speckled_frame(seed, 45, 77))
        cases += [(depth, mask, ~mask, reach) for reach in (2, 5)]
    far_ends_seen = 0
    for depth, known, holes, reach in cases:
        want_near, want_far = hole_sides_reference(depth, known, holes, reach)
        near, far = foreground_near_holes(depth, known, holes, reach), far_side_of_holes(depth, known, holes, reach)
        assert want_near.any() and np.array_equal(near, want_near)
        assert np.array_equal(far, want_far)
        far_ends_seen += want_far.any()
    assert far_ends_seen >= len(cases) // 2  # the far side is tested, not only its absence


@pytest.mark.parametrize("first", [10, 0], ids=["inside", "from_the_border"])
def test_a_run_one_known_pixel_after_another_is_paired_with_its_own_ends(first):
    """A wall (depth 8) with a box (depth 3) to its right, and between rows 5 and 15 two holes along
    each row: 3 columns from ``first``, one known wall pixel, 3 columns, then the box. The second
    hole's run ends on the wall pixel and on the box: the wall pixel is its far end and the far
    side, the box its foreground (before c6759543 a run one known pixel after the previous one was
    never paired, so that hole had no far side at all). From the border (columns 0-2) the first
    run has one end and marks nothing, and the second is paired all the same."""
    between, box = first + 3, first + 7
    depth = np.full((20, 30), 8.0, np.float32)
    depth[:, box:] = 3.0
    holes = np.zeros(depth.shape, bool)
    holes[5:16, first:between] = holes[5:16, between + 1 : box] = True
    depth[holes] = 0.0
    far = far_side_of_holes(depth, ~holes, holes, reach=8)
    assert far[5:16, between].all() and far.sum() == far[:, between].sum()  # the pixel between the holes, and only it
    near = foreground_near_holes(depth, ~holes, holes, reach=8)
    # The box stays out of the fill, the wall pixel between the holes in it.
    assert near[5:16, box].all() and not near[:, : between + 1].any()


def test_no_pixel_beyond_every_hole_s_reach_is_foreground():
    """Foreground lies within a hole's reach: a known pixel far from every hole is not, whatever
    its depth (before, one of depth below 0 was, as nearer than 0.9 × no depth at all)."""
    depth = np.full((40, 60), 4.0, np.float32)
    holes = np.zeros(depth.shape, bool)
    holes[5:8, 5:8] = True
    depth[holes], depth[35, 55] = 0, -1.0
    near = foreground_near_holes(depth, ~holes, holes, reach=2)
    assert not near[20:, 30:].any()


def random_holes(rng, h, w):
    """Holes of one of five kinds on an h × w image: dense noise, rectangles (often at the image's
    borders), thin lines across it, all but a few pixels, or none."""
    kind = rng.integers(5)
    if kind == 0:
        return rng.random((h, w)) < rng.uniform(0.05, 0.9)
    holes = np.zeros((h, w), bool)
    if kind == 1:
        for _ in range(rng.integers(1, 4)):
            y, x = rng.integers(0, h), rng.integers(0, w)
            holes[y : y + rng.integers(1, h + 1), x : x + rng.integers(1, w + 1)] = True
    elif kind == 2:
        holes[rng.integers(0, h), :] = True
        holes[:, rng.integers(0, w)] = True
    elif kind == 3:
        holes = rng.random((h, w)) < 0.95
    return holes


def test_hole_sides_equal_the_whole_image_algorithm_on_random_holes():
    """foreground_near_holes and far_side_of_holes, each step cropped, equal the whole-image
    algorithm on 600 random holes and depths: images 1 to 37 pixels on a side, odd and even, holes
    at every border, covering all but one pixel, lines across the image, none; known pixels that
    are not all the non-holes; piecewise-constant depth (ties, depth edges) and noise."""
    rng = np.random.default_rng(5)
    sides, checked, far_seen = (1, 2, 3, 4, 7, 16, 37), 0, 0
    for _ in range(600):
        h, w = int(rng.choice(sides)), int(rng.choice(sides))
        holes = random_holes(rng, h, w)
        if holes.all():  # no pixel beside a hole: test_a_frame_all_hole_has_no_sides
            continue
        levels = np.where(np.arange(w) < rng.integers(0, w + 1), 6.0, 3.0) + 0.01 * np.arange(h)[:, None]
        depth = (rng.uniform(0.5, 10, (h, w)) if rng.random() < 0.5 else levels).astype(np.float32)
        known = ~holes & (rng.random((h, w)) > (0.1 if rng.random() < 0.3 else 0))
        reach = int(rng.choice([1, 2, 3, 8]))
        want_near, want_far = hole_sides_reference(depth, known, holes, reach)
        assert np.array_equal(foreground_near_holes(depth, known, holes, reach), want_near), (h, w, reach)
        assert np.array_equal(far_side_of_holes(depth, known, holes, reach), want_far), (h, w, reach)
        checked, far_seen = checked + 1, far_seen + want_far.any()
    assert checked > 500 and far_seen > 50  # the far side is tested, not only its absence


def test_a_frame_all_hole_has_no_sides():
    """Every pixel a hole: no known pixel borders one, so nothing is foreground or far side, without
    a warning, also where known pixels lie inside the hole. Before, the holes' half-width (no pixel
    outside them to measure to) overflowed: two RuntimeWarnings, and a ValueError (a negative power
    of 2) with known pixels inside."""
    depth = np.full((6, 9), 2.0, np.float32)
    holes = np.ones(depth.shape, bool)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for known in (~holes, holes):
            assert not foreground_near_holes(depth, known, holes, 2).any()
            assert not far_side_of_holes(depth, known, holes, 2).any()


def floor_beside_a_box(wall_from: int = 0):
    """A 48 × 64 view: an orange wall at depth 8 above row 16, a grey floor below it receding
    from depth 4 (bottom row) to 8 (row 16), a yellow box at depth 3 right of column 40 from row
    20 down, and a hole 4 pixels wide between the floor and the box (rows 20 on): what a camera
    moving left uncovers behind the box."""
    h, w = 48, 64
    rows = np.arange(h, dtype=np.float32)[:, None]
    floor_depth = 4 + 4 * (h - 1 - rows) / (h - 1 - 16)
    depth = np.where(rows < 16, 8.0, floor_depth) * np.ones((1, w), np.float32)
    color = np.where((rows < 16)[..., None], np.float32([1.0, 0.3, -0.5]), np.float32([0.0, 0.0, 0.0])) * np.ones((1, w, 1), np.float32)
    box = (rows >= 20) & (np.arange(w) >= 40)
    depth[box], color[box] = 3.0, [0.9, 0.9, -0.6]
    holes = (rows >= 20) & (np.arange(w) >= 36) & (np.arange(w) < 40)
    depth[holes], color[holes] = 0.0, 0.0
    return color.astype(np.float32), depth.astype(np.float32), holes


def test_a_hole_between_a_box_and_the_floor_fills_with_the_floor():
    """The floor beside the hole is nearer than 0.9 × the wall that borders the hole higher up,
    but it lies across the hole from the box: from row 28 down the hole fills with the floor's
    grey near the floor's depth (red at most 0.18, depth within 1.7 of the floor's), not with the
    wall's orange at the wall's depth (before: red 0.39 to 0.59, depth 7.7 to 7.8, up to 3.8
    behind the floor, as the floor beside the hole counted as foreground), and the box stays out."""
    color, depth, holes = floor_beside_a_box()
    filled_color, filled_depth = fill_holes(color, depth, holes, reach=4)
    below = holes & (np.arange(48)[:, None] >= 28)
    assert np.abs(filled_color[below]).max() < 0.25  # grey (0, 0, 0): neither the wall's orange (red 1) nor the box's yellow
    floor_depth = np.broadcast_to(depth[:, 35:36], depth.shape)  # the floor's depth at each row
    assert np.abs(filled_depth[below] - floor_depth[below]).max() < 2.0
    near = foreground_near_holes(depth, ~holes, holes, reach=4)
    assert near[20:, 40:44].all() and not near[:, :36].any()  # the box is kept out, the floor and the wall are not


def test_a_hole_above_a_box_top_fills_with_the_wall_behind_it():
    """A ball (depth 2.5) uncovers a hole whose far side is the wall (depth 8) above row 24 and a
    teal box (depth 5) below it; above the box's top (rows 8 to 21) the hole is the wall's: it
    fills orange at the wall's depth (red at least 0.8, depth 7.8 or more), not with the box's
    teal smeared up and leftwards from its top corner (before: red down to 0.51, depth 7.2, as
    the box's outline beside the wall counted as the hole's far side and stayed in the coarse levels)."""
    h, w = 48, 64
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    depth = np.full((h, w), 8.0, np.float32)
    color = np.broadcast_to(np.float32([1.0, 0.3, -0.5]), (h, w, 3)).copy()  # the orange wall
    floor = np.broadcast_to(rows >= 36, (h, w))
    depth[floor] = np.broadcast_to(4 + 4 * (h - 1 - rows) / (h - 1 - 36), (h, w))[floor]
    color[floor] = 0.0
    ball = (rows >= 8) & (rows < 40) & (cols < 20)
    depth[ball], color[ball] = 2.5, [0.9, 0.2, 0.6]
    box = (rows >= 24) & (cols >= 28)
    depth[box], color[box] = 5.0, [-0.8, 0.4, 0.4]
    holes = (rows >= 8) & (rows < 36) & (cols >= 20) & (cols < 28)
    depth[holes], color[holes] = 0.0, 0.0
    filled_color, filled_depth = fill_holes(color, depth, holes, reach=32)  # (the demo's reach at 640 wide)
    above = holes & (rows < 22)
    assert filled_color[above][:, 0].min() > 0.8 and filled_depth[above].min() > 7.8


def test_growing_cloud_renders_as_the_concatenated_cloud():
    g = torch.Generator().manual_seed(0)
    K = torch.tensor([[[30.0, 0, 20], [0, 30.0, 15], [0, 0, 1]]])
    cloud, points, colors = None, [], []
    for n in (5, 700, 300, 2000):  # the buffer grows twice, the render's scratch with it
        p = torch.randn(n, 3, generator=g) + torch.tensor([0.0, 0.0, 4.0])
        c = torch.rand(n, 3, generator=g) * 2 - 1
        points.append(p)
        colors.append(c)
        if cloud is None:
            cloud = GrowingCloud(p, c)
        else:
            cloud.append(p, c)
        got = cloud.render(torch.eye(4)[None], K, 30, 40)
        want = forward_warp(torch.cat(points), torch.cat(colors), torch.eye(4)[None], K, 30, 40)
        assert len(cloud) == sum(len(x) for x in points)
        assert torch.equal(got.color, want.color) and torch.equal(got.mask, want.mask) and torch.equal(got.depth, want.depth)


def test_generators_show_their_settings():
    # Before: "<gen3c.pipelines.preview.PreviewGenerator object at 0x…>", and a ValueError for a bad margin.
    from gen3c.errors import Gen3cInputError

    assert repr(PreviewGenerator(margin=0.25)) == "PreviewGenerator(margin=0.25, reach=0.05)"
    # Any real number is taken and kept as a float (a Fraction was shown as margin=1/4).
    from fractions import Fraction

    for margin in (Fraction(1, 4), np.float32(0.25), np.int64(0)):
        generator = PreviewGenerator(margin=margin, reach=Fraction(1, 20))
        assert type(generator.margin) is float and type(generator.reach) is float
        assert repr(generator) == f"PreviewGenerator(margin={float(margin)}, reach=0.05)"
    with pytest.raises(Gen3cInputError, match=r"margin must be in \[0, 1\]"):
        PreviewGenerator(margin=2)
    for name, bad in (("margin", "0.5"), ("reach", None), ("margin", True)):  # raw TypeErrors before
        with pytest.raises(Gen3cInputError, match=rf"PreviewGenerator {name} is \w+ '{bad}': pass a number"):
            PreviewGenerator(**{name: bad})


def test_preview_refuses_buffers_it_cannot_merge_in_one_line(box_scene):
    """Before: buffers rendered without depth ended in composite_buffers as a raw TypeError
    ('NoneType' object is not subscriptable), and buffers of fewer frames in an IndexError."""
    from gen3c.errors import Gen3cInputError

    _, _, image, depth = box_scene
    src = prepare_source(image, depth, intrinsics_from_fov(60.0, *image.shape[-2:]), (24, 40))
    cams = preset_cameras(src, "left", "center_facing", 3, 0.3)
    cache = build_cache([src])
    with pytest.raises(Gen3cInputError, match=r"got buffers rendered without depth: pass cache.render\(cameras\) \(depth=True\)"):
        PreviewGenerator().generate(cache, cams, src.image, buffers=cache.render(cams, depth=False))
    with pytest.raises(Gen3cInputError, match="got buffers of 2 frames for 3 cameras"):
        PreviewGenerator().generate(cache, cams, src.image, buffers=cache.render(cams[:2]))
    frames = PreviewGenerator().generate(cache, cams, src.image, buffers=cache.render(cams))
    assert torch.equal(frames, PreviewGenerator().generate(cache, cams, src.image))


def test_renders_their_merge_and_the_frames_past_the_machines_memory_are_refused_before_the_renders():
    """The renders were checked against the machine's memory (20 bytes a pixel of a buffer), not
    the preview's merge of them and its frames (13 more a pixel for one buffer): a video whose
    renders fit and the rest did not was rendered, then allocated until torch's error or the
    system's kill. Now generate_video asks the preview before the renders are made, and generate
    before it merges renders it is handed: one line, nothing made."""
    from gen3c.errors import Gen3cMemoryError
    from gen3c.models import memory
    from gen3c.pipelines import preview

    texture, depth, K = textured_strip(64, 48)
    src = prepare_source(texture, depth, K, (64, 48))
    cams = sliding_cameras(src.K, 64, 48, [0.0, 0.01, 0.02, 0.03, 0.04])
    cache = build_cache([src])
    renders = 5 * 64 * 48 * 20
    fits_renders = memory.HostMemory(available=renders + 1000, total=renders + 1000)  # (held: 0, as a process holding nothing)
    rendered, merged = [], []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory.HostMemory, "now", classmethod(lambda cls: fits_renders))
        patch.setattr(Cache3D, "render", lambda self, *args, **kwargs: rendered.append(1))
        patch.setattr(preview, "composite_buffers", lambda buffers: merged.append(1))
        message = (
            r"^the preview of 5 frames of 64×48 \(1 buffer\) needs 0\.0 GB of CPU memory for the renders, their merge and the frames; with the 0\.0 GB "
            r"this process holds already, 0\.0 GB, and this machine has 0\.0 GB of RAM and swap: make fewer frames at once \(gen3c generate --chunk_frames; "
            r"in Python generate_video\(\.\.\., chunk_frames=N\)\) or at a lower --resolution$"
        )
        with pytest.raises(Gen3cMemoryError, match=message):
            generate_video(cache, cams, PreviewGenerator(), first_frame=src.image)
        assert not rendered
        buffers = BufferRenders(torch.zeros(5, 1, 3, 64, 48), torch.zeros(5, 1, 1, 64, 48), torch.zeros(5, 1, 1, 64, 48))
        # (the renders handed in are held already: the merge and the frames are asked for)
        merge_and_frames = preview.preview_bytes(5, 1, 64, 48) - preview.render_bytes(5, 1, 64, 48)
        patch.setattr(memory.HostMemory, "now", classmethod(lambda cls: memory.HostMemory(available=merge_and_frames - 1, total=merge_and_frames - 1)))
        with pytest.raises(Gen3cMemoryError, match=message.replace("the renders, their merge", "the merge of its renders")):
            PreviewGenerator().generate(cache, cams, src.image, buffers=buffers)
        assert not merged
    # ... and the view past the frame's: the band as it is made and its points the later frames may render
    enough = 5 * 64 * 48 * (20 + 1 + 15) + 64 * 48 * 500 + extension_bytes(64, 48, 32, (32,) * 4) + preview.FILL_POINT_BYTES * preview.band_points(64, 48, (32,) * 4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory.HostMemory, "now", classmethod(lambda cls: memory.HostMemory(available=enough, total=enough)))
        assert generate_video(cache, cams, PreviewGenerator(), first_frame=src.image).frames.shape == (5, 3, 64, 48)
    # 15 bytes a pixel for the frames (and their 8-bit copy), 500 a pixel of one frame for the work
    # on a frame; with the renders on the CPU, 20 a buffer and the merge's (1 for one buffer, 17 for more).
    assert preview.preview_bytes(10, 1, 64, 48) == 10 * 64 * 48 * (15 + 20 + 1) + 64 * 48 * 500
    assert preview.preview_bytes(10, 3, 64, 48) == 10 * 64 * 48 * (15 + 60 + 17) + 64 * 48 * 500
    assert preview.preview_bytes(10, 3, 64, 48, renders_on_cpu=False) == 10 * 64 * 48 * 15 + 64 * 48 * 500


def test_the_preview_estimate_of_a_two_buffer_chunk_is_what_it_takes():
    """A later chunk of a long run merges two buffers; the estimate counted the merge at 36 bytes a
    pixel (a colour and depth of its own twice, as while a third buffer merges) and the frames
    without the video writer's 8-bit copy: 88 bytes a pixel, 8.9 GB for 121 frames at 704×1280,
    where the chunk took 7.05 GB over the RSS before it (measured, `gen3c demo --num_video_frames
    241`). The merge keeps a colour, depth and mask of its own (17), the frames take 15 with the
    video writer's 8-bit copy, and a frame's work 500 a pixel of one frame: 7.7 GB."""
    from gen3c.pipelines import preview

    pixels = 121 * 704 * 1280
    assert preview.preview_bytes(121, 2, 704, 1280) == pixels * (40 + 17 + 15) + 704 * 1280 * 500  # 7.7 GB
    assert preview.render_bytes(121, 2, 704, 1280) == pixels * 40


def test_renders_handed_to_the_preview_are_not_counted_again():
    """generate's own check, asked after the renders are made (by generate_video, or handed in),
    counted them again as though about to be allocated: beside what the process holds (them
    included) it asks for the merge and the frames only."""
    from gen3c.models import memory
    from gen3c.pipelines import preview

    texture, depth, K = textured_strip(64, 48)
    src = prepare_source(texture, depth, K, (64, 48))
    cams = sliding_cameras(src.K, 64, 48, [0.0, 0.01, 0.02, 0.03, 0.04])
    cache = build_cache([src])
    buffers = cache.render(cams)
    enough = preview.preview_bytes(5, 1, 64, 48) - 5 * 64 * 48 * 20 + 200_000  # (less the renders, 20 bytes a pixel; room for a small fill cloud)
    assert enough < preview.preview_bytes(5, 1, 64, 48)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory.HostMemory, "now", classmethod(lambda cls: memory.HostMemory(available=enough, total=enough)))
        assert PreviewGenerator(margin=0).generate(cache, cams, src.image, buffers=buffers).shape == (5, 3, 64, 48)


def textured_strip(H, W):
    """A wall at depth 4 with a fine texture, seen by an identity camera 60° wide: (image, depth, K)."""
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    texture = torch.stack([(xx % 7) / 3.5 - 1, (yy % 3) / 1.5 - 1, (xx // 16 % 2) - 0.5]).float()
    return texture, torch.full((H, W), 4.0), intrinsics_from_fov(60.0, H, W)


def test_the_view_past_a_narrow_strip_takes_memory_for_where_the_cameras_look_not_for_its_width():
    """The band past the first frame was made margin × the larger side (half of it) wide on every
    side: for an 8 × 1024 strip, 1032 × 2048 pixels, 34 MB a copy and 272 MB at its peak (a 16 ×
    7680 strip's took 13.5 GB), where the cameras look a few pixels past it. By hand: sliding
    0.03 to the right at fx = 887 and depth 4, they see the wall 6.7 pixels past its right side and
    none past the others; with the seen test's slack (5), the pixels a seen sample keeps around it
    (6) and 2 to spare, the band reaches 20 pixels past any side. Its extension is filtered over
    that and margins of 8 cells of 16 pixels (and less than a cell more, rows on the cells' grid):
    at most 8 + 2 · (20 + 128 + 16) = 336 rows of the 2048 columns (too few to take any out),
    and it holds at most 5 float32 copies of 4 channels (80 bytes a pixel): 55 MB."""
    import tracemalloc

    H, W = 8, 1024
    texture, depth, K = textured_strip(H, W)
    cams = sliding_cameras(K, H, W, [0.0, 0.01, 0.02, 0.03])
    cache = build_cache([prepare_source(texture, depth, K, (H, W))])
    buffers = cache.render(cams)
    tracemalloc.start()
    try:
        frames = PreviewGenerator().generate(cache, cams, texture, buffers=buffers)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 336 * 2048 * 80  # 55 MB
    assert frames.shape == (4, 3, H, W) and torch.allclose(frames[0], texture, atol=1e-5)


def test_the_view_past_a_strip_is_the_whole_bands_where_the_cameras_look():
    """What the band past the frame shows, made as far as the later cameras look, is what the
    whole band (margin × the larger side past every side) showed, bit for bit: every frame."""
    import gen3c.pipelines.preview as preview

    H, W = 16, 640
    texture, depth, K = textured_strip(H, W)
    depth = depth + torch.linspace(0, 1, W)  # (a slanted wall: the band's depth varies)
    src = prepare_source(texture, depth, K, (H, W))
    cams = preset_cameras(src, "up", "center_facing", 5, 0.3)
    made = []
    init = preview.BandExtension.__init__

    def spy(self, values, pad, sides=None):
        made.append((pad, sides))
        init(self, values, pad, sides)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(preview.BandExtension, "__init__", spy)
        frames = PreviewGenerator().generate(build_cache([src]), cams, src.image)
        patch.setattr(preview, "sides_seen_past_frame", lambda cameras, depth_range, pad, slack: (pad,) * 4)
        whole = PreviewGenerator().generate(build_cache([src]), cams, src.image)
    (pad, sides), (_, every) = made
    assert pad == 320 and max(sides) < 40 and every == (pad,) * 4  # it looks a little past each side
    assert torch.equal(frames, whole)


def whole_band_extension(values, pad):
    """What extend_past_frame makes, by its definition: the Gaussian pyramid of the whole band (the
    frame with its border rows and columns repeated ``pad`` pixels past every side), every level
    brought back to full size, and each pixel blending the two levels around log2 of twice its
    distance from the frame."""
    H, W, C = values.shape
    band = cv2.copyMakeBorder(values, pad, pad, pad, pad, cv2.BORDER_REPLICATE).reshape(H + 2 * pad, W + 2 * pad, C)
    y, x = np.ogrid[: band.shape[0], : band.shape[1]]
    outside = np.hypot(np.maximum(np.maximum(pad - y, y - (pad + H - 1)), 0), np.maximum(np.maximum(pad - x, x - (pad + W - 1)), 0))
    position = np.log2(np.maximum(2 * outside, 1.0)).astype(np.float32)
    out, finer, level = band.copy(), band, band
    for k in range(1, int(np.ceil(position.max())) + 1):
        level = cv2.pyrDown(level).reshape((level.shape[0] + 1) // 2, (level.shape[1] + 1) // 2, C)
        blurred = level
        for _ in range(k):
            blurred = cv2.pyrUp(blurred).reshape(blurred.shape[0] * 2, blurred.shape[1] * 2, C)
        blurred = blurred[: band.shape[0], : band.shape[1]]
        ring = (position > k - 1) & (position <= k)
        weight = (position[ring] - (k - 1))[:, None]
        out[ring] = (1 - weight) * finer[ring] + weight * blurred[ring]
        finer = blurred
    return out


def test_the_view_past_a_strip_made_a_tile_at_a_time_gives_the_same_video():
    """A strip whose later camera looks far above it (8 × 1024 of the packaged sample, up: 355 of
    the band's 512 rows above it) has its band made a tile at a time where its window holds more
    than TILE_PIXELS: here, with TILE_PIXELS cut to 2^17, in 2 rows of 2 tiles (no split makes
    parts under 256 rows or 512 columns). Its seen pixels join the fill cloud in the whole band's
    order, so the video is the one the whole band gives, bit for bit."""
    import gen3c.pipelines.preview as preview
    from gen3c.scenes import load_demo_sample

    image, depth, K = load_demo_sample()
    src = prepare_source(image, depth, K, (8, 1024))
    cams = preset_cameras(src, "up", "center_facing", 2, 0.3)
    windows, extended = [], []
    window, extend = preview.BandExtension.window, preview.PreviewGenerator._extend_past_frame

    def spy_window(self, r0, r1, c0, c1):
        windows.append((r0, r1, c0, c1))
        return window(self, r0, r1, c0, c1)

    def spy_extend(self, *args):
        extended.append(extend(self, *args))
        return extended[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(preview.BandExtension, "window", spy_window)
        patch.setattr(preview.PreviewGenerator, "_extend_past_frame", spy_extend)
        whole = PreviewGenerator().generate(build_cache([src]), cams, src.image)
        assert len(windows) == 1
        patch.setattr(preview, "TILE_PIXELS", 2**17)
        tiled = PreviewGenerator().generate(build_cache([src]), cams, src.image)
    rows, cols = {w[:2] for w in windows[1:]}, {w[2:] for w in windows[1:]}
    assert len(windows) == 1 + 4 and len(rows) == len(cols) == 2
    assert len(extended[0][0]) > 10_000 and all(torch.equal(a, b) for a, b in zip(extended[0], extended[1], strict=True))
    assert torch.equal(tiled, whole)


def test_the_view_past_a_strip_takes_memory_for_a_tile_not_for_the_band():
    """A 16 × 7680 strip whose later cameras look far above and below it (clockwise) took 10.5 GB
    for its band (13.5 GB the estimate), and one looking far above it (up) 3.6 GB: the band is made
    a tile at a time, its largest window within TILE_PIXELS (128 MB a float32 copy of 4 channels),
    so the estimate stays under 1 GB however far past the frame the cameras look."""
    for sides in [(3840, 3840, 3840, 1043), (3840, 15, 13, 14), (3840, 3840, 3840, 3840)]:
        whole = (16 + 2 * 3840) * (7680 + 2 * 3840)
        tiles = band_tiles(16, 7680, 3840, sides)
        assert all((w[1] - w[0]) * (w[3] - w[2]) <= TILE_PIXELS for w in (band_window(16, 7680, 4, 3840, tile) for tile in tiles))
        need = extension_bytes(16, 7680, 3840, sides)
        assert need <= 16 * 4 * (2 * TILE_PIXELS + whole // 64) and need < 2**30


@pytest.mark.parametrize(
    ("shape", "pad", "sides"),
    [
        ((40, 60, 4), 700, (12, 0, 30, 700)),  # columns taken out on the left
        ((40, 60, 4), 700, (700, 3, 9, 0)),  # ... and on the right, rows at the bottom
        ((8, 70, 1), 750, (20, 40, 25, 7)),  # one channel: steps of 2048 columns, none here
        ((30, 9, 3), 900, (0, 0, 0, 0)),
        ((30, 50, 4), 60, (5, 60, 0, 33)),  # a narrow band: nothing taken out
        ((12, 40, 4), 300, None),  # the whole band
    ],
)
def test_extend_past_frame_over_some_sides_is_the_whole_extension_there_bit_for_bit(shape, pad, sides):
    rng = np.random.default_rng(sum(shape) + pad)
    values = (rng.random(shape, np.float32) * 4 - 1).astype(np.float32)
    top, bottom, left, right = (pad,) * 4 if sides is None else sides
    H, W, _ = shape
    whole = whole_band_extension(values, pad)
    part = extend_past_frame(values, pad, sides)
    assert part.shape == (H + top + bottom, W + left + right, shape[2])
    assert np.array_equal(part, whole[pad - top : pad + H + bottom, pad - left : pad + W + right])


@pytest.mark.parametrize(
    ("shape", "pad", "sides", "most", "grid"),
    [
        ((16, 1200, 4), 600, (600, 600, 600, 200), 2**20, (2, 3)),  # a strip looked at far above and below it
        ((16, 1000, 4), 500, (500, 500, 500, 500), 2**20, (2, 2)),
        ((300, 16, 4), 600, (600, 10, 600, 600), 2**20, (2, 1)),  # one standing up
        ((20, 1400, 1), 700, (700, 5, 700, 700), 2**21, (2, 1)),  # one channel: columns on steps of 2048
    ],
)
def test_a_band_made_a_tile_at_a_time_is_the_whole_extension_bit_for_bit(shape, pad, sides, most, grid):
    """The band is made a tile at a time (each filtered over its window: the tile and margins), so
    that the memory it takes follows a tile's size; every tile's pixels are the whole band's."""
    rng = np.random.default_rng(sum(shape) + pad)
    values = (rng.random(shape, np.float32) * 4 - 1).astype(np.float32)
    H, W, C = shape
    top, bottom, left, right = sides
    tiles = band_tiles(H, W, pad, sides, C, most)
    rows, cols = sorted({tile[:2] for tile in tiles}), sorted({tile[2:] for tile in tiles})
    assert (len(rows), len(cols)) == grid and len(tiles) == len(rows) * len(cols)
    # They cover the part asked for, row by row, left to right, each made over at most `most` pixels.
    assert rows[0][0] == pad - top and rows[-1][1] == pad + H + bottom and all(a[1] == b[0] for a, b in zip(rows, rows[1:], strict=False))
    assert cols[0][0] == pad - left and cols[-1][1] == pad + W + right and all(a[1] == b[0] for a, b in zip(cols, cols[1:], strict=False))
    assert tiles == sorted(tiles)
    for tile in tiles:
        r0, r1, c0, c1 = band_window(H, W, C, pad, tile)
        assert (r1 - r0) * (c1 - c0) <= most
    whole = whole_band_extension(values, pad)
    band = BandExtension(values, pad, sides)
    for r0, r1, c0, c1 in tiles:
        assert np.array_equal(band.window(r0, r1, c0, c1), whole[r0:r1, c0:c1]), (r0, r1, c0, c1)


def test_sides_seen_past_frame_bound_what_the_later_cameras_see():
    # By hand: a wall at depth 2, fx = 100, 40 × 60 pixels; the second camera, 0.1 to the right,
    # sees it shifted 100 · 0.1 / 2 = 5 pixels left. It sees pixels u, v of its own in (−s, 60 + s)
    # × (−s, 40 + s), s the slack (3) and the pixel the bound keeps to spare (1): the first
    # frame's u in (1, 69), v in (−4, 44) — 10 pixels past its right side (column 59), 4 above, 5
    # below, none left of it — and one more pixel to spare on each answer.
    from gen3c.cameras import make_intrinsics

    K = make_intrinsics(100.0, 100.0, 29.5, 19.5)
    cams = sliding_cameras(K, 40, 60, [0.0, 0.1])
    assert sides_seen_past_frame(cams, (2.0, 2.0), 30, slack=3) == (5, 6, 0, 11)
    # A nearer wall moves further (10 pixels at depth 1); the band's width caps it; one camera has no later one.
    assert sides_seen_past_frame(cams, (1.0, 2.0), 30, slack=3) == (5, 6, 0, 16)
    assert sides_seen_past_frame(cams, (2.0, 2.0), 10, slack=3) == (5, 6, 0, 10)
    assert sides_seen_past_frame(cams[:1], (2.0, 2.0), 30, slack=3) is None
    # A camera turned away sees none of it; depth the bound cannot hold keeps the whole band.
    away = Cameras(torch.stack([torch.eye(4), torch.diag(torch.tensor([-1.0, 1.0, -1.0, 1.0]))]), K, 40, 60)
    assert sides_seen_past_frame(away, (2.0, 2.0), 30, slack=3) is None
    assert sides_seen_past_frame(cams, (0.0, 2.0), 30, slack=3) == (30,) * 4
    assert sides_seen_past_frame(cams, (1.0, float("inf")), 30, slack=3) == (30,) * 4


def test_sides_seen_past_frame_hold_every_band_pixel_a_later_camera_sees():
    """Brute force over the whole band, at depths across the range: no pixel a later camera
    sees (the preview's seen test) lies past the sides the bound gives."""
    from gen3c.cameras import project_points

    torch.manual_seed(0)
    H, W, pad, slack = 24, 40, 20, 5
    K = intrinsics_from_fov(60.0, H, W)
    v, u = torch.meshgrid(torch.arange(-pad, H + pad), torch.arange(-pad, W + pad), indexing="ij")
    for trial in range(12):
        eye = torch.randn(4, 3) * 0.3
        eye[0] = 0
        target = torch.tensor([0.0, 0.0, 3.0]) + torch.randn(4, 3) * 0.5
        cams = Cameras(look_at(eye, target), K, H, W)
        near, far = 1.0 + trial * 0.2, 2.5 + trial * 0.5
        sides = sides_seen_past_frame(cams, (near, far), pad, slack)
        seen = torch.zeros(v.shape, dtype=torch.bool)
        for z in torch.linspace(near, far, 7):
            cam = torch.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, torch.full(u.shape, float(z))], -1)
            c2w = torch.linalg.inv(cams.w2c[0])
            world = cam.reshape(-1, 3) @ c2w[:3, :3].T + c2w[:3, 3]
            uv, depth = project_points(world[None], cams.K[1:], cams.w2c[1:])
            inside = (depth > 0) & (uv[..., 0] > -slack) & (uv[..., 0] < W + slack) & (uv[..., 1] > -slack) & (uv[..., 1] < H + slack)
            seen |= inside.any(0).reshape(v.shape)
        if sides is None:
            assert not seen.any(), trial
            continue
        top, bottom, left, right = sides
        rows, cols = seen.any(1).nonzero().flatten(), seen.any(0).nonzero().flatten()
        if len(rows):
            assert v[rows.min(), 0] >= -top and v[rows.max(), 0] <= H - 1 + bottom, trial
            assert u[0, cols.min()] >= -left and u[0, cols.max()] <= W - 1 + right, trial


def test_the_points_a_view_past_the_frame_adds_are_counted_before_it_is_made():
    """The check before the band past the first frame counted the band as it is made, not the
    points of it that later frames render (the fill cloud, ~120 bytes a point with the splat's
    scratch): cameras pulling far back see all of it, 4.6 frames of points at margin 0.5, and a
    1408×2560 band of 16.7 million points took 1.9 GB past an estimate of ~0.3 GB (a 4320×7680
    one ~17 GB), until the system's kill. Now its pixels past the frame count, FILL_POINT_BYTES
    each: one line, before the band is made."""
    from gen3c.errors import Gen3cMemoryError
    from gen3c.models import memory
    from gen3c.pipelines import preview

    texture, depth, K = textured_strip(48, 64)
    src = prepare_source(texture, depth, K, (48, 64))
    w2c = torch.eye(4).repeat(3, 1, 1)
    w2c[:, 2, 3] = torch.tensor([0.0, 4.0, 8.0])  # backing away from the wall at depth 4: it shrinks to a third
    cams = Cameras(w2c, src.K, 48, 64)
    cache = build_cache([src])
    # Every pixel of the band past the frame is seen, and each joins the fill cloud.
    pad, sides = 32, (32,) * 4
    made = []
    real_append = GrowingCloud.append

    def append(self, points, colors):
        made.append(len(points))
        real_append(self, points, colors)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(GrowingCloud, "append", append)
        PreviewGenerator().generate(cache, cams, src.image)
    seen = (48 + 64) * (64 + 64) - 48 * 64  # every pixel of the band past the frame
    assert made[1] == seen  # (made[0]: the put-back surfaces)
    frames = 3 * 48 * 64 * preview.FRAME_BYTES  # (not yet written when the band is made: the renders are held already)
    band = extension_bytes(48, 64, pad, sides)
    points = 120 * seen
    short = frames + band + points // 2  # the frames and the band fit, the points do not
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory.HostMemory, "now", classmethod(lambda cls: memory.HostMemory(available=short, total=short)))
        patch.setattr(BandExtension, "__init__", lambda *args, **kwargs: pytest.fail("the band was made"))
        with pytest.raises(Gen3cMemoryError, match=r"^the preview's view past the first frame \(48×64, extended 32, 32, 32 and 32 pixels .* "
                           r"with the up to 11,264 points of it that later frames render, and the frames; with the 0\.0 GB this process holds already"):
            PreviewGenerator().generate(cache, cams, src.image)
    enough = frames + band + points
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory.HostMemory, "now", classmethod(lambda cls: memory.HostMemory(available=enough, total=enough)))
        assert PreviewGenerator().generate(cache, cams, src.image).shape == (3, 3, 48, 64)
    assert preview.band_points(48, 64, sides) == seen and preview.FILL_POINT_BYTES == 120


def test_the_view_past_the_frame_is_counted_beside_the_renders_and_frames_it_is_made_with():
    """The band and its points were checked alone, though the chunk's renders and frames are held
    while the band is made and its points render (check_memory checked those alone): a band that
    fit only without them was made, past the machine's memory. Now they count together."""
    from gen3c.errors import Gen3cMemoryError
    from gen3c.models import memory
    from gen3c.pipelines import preview

    texture, depth, K = textured_strip(48, 64)
    src = prepare_source(texture, depth, K, (48, 64))
    w2c = torch.eye(4).repeat(3, 1, 1)
    w2c[:, 2, 3] = torch.tensor([0.0, 4.0, 8.0])  # backing away: every pixel of the band is seen
    cams = Cameras(w2c, src.K, 48, 64)
    cache = build_cache([src])
    sides = (32,) * 4
    frames = 3 * 48 * 64 * preview.FRAME_BYTES
    alone = extension_bytes(48, 64, 32, sides) + preview.FILL_POINT_BYTES * preview.band_points(48, 64, sides)
    assert frames < alone  # the renders and frames fit, and so do the band and its points, each alone
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory.HostMemory, "now", classmethod(lambda cls: memory.HostMemory(available=alone, total=alone)))
        patch.setattr(BandExtension, "__init__", lambda *args, **kwargs: pytest.fail("the band was made"))
        with pytest.raises(Gen3cMemoryError, match=rf"^the preview's view past the first frame .* needs {(frames + alone) / 2**30:.1f} GB of CPU memory, "):
            PreviewGenerator().generate(cache, cams, src.image)


def test_a_fill_cloud_that_outgrows_the_machines_memory_is_refused_before_it_grows():
    """The fill cloud takes every frame's filled holes and grows with the chunk's frames (cameras
    circling far out over the demo's room, 176×320: 30 frames of points by the 121st, 1.7 million),
    and nothing counted it: a long chunk outgrew the machine until the system's kill. Now the
    preview asks before the cloud grows (by half when full), with its renders and frames: one line,
    naming the frame and --chunk_frames (each chunk starts a new cloud)."""
    from gen3c.errors import Gen3cMemoryError
    from gen3c.models import memory
    from gen3c.pipelines import preview

    texture, depth, K = textured_strip(48, 64)
    src = prepare_source(texture, depth, K, (48, 64))
    cams = sliding_cameras(src.K, 48, 64, [0.6 * i for i in range(12)])  # the wall slides out of view: new holes every frame
    cache = build_cache([src])
    capacities = []
    real_append = GrowingCloud.append

    def append(self, points, colors):
        real_append(self, points, colors)
        capacities.append(self._rows.shape[1])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(GrowingCloud, "append", append)
        expected = PreviewGenerator(margin=0).generate(cache, cams, src.image)  # (margin 0: no band past the first frame)
    assert len(set(capacities)) >= 3, capacities  # it grew, frame after frame
    frames = 12 * 48 * 64 * preview.FRAME_BYTES  # (the renders and the merge are held already)
    need = frames + 120 * capacities[-1]
    written = []  # the frames made so far, resident in the process: what it holds, as its RSS says

    def machine(total):
        return classmethod(lambda cls: memory.HostMemory(available=total, total=total, held=len(written) * 48 * 64 * 12))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(preview, "FRAME_WORK_BYTES", 0)  # (a frame's work, 1.5 MB at 48×64, would be refused before the cloud)
        patch.setattr(memory.HostMemory, "now", machine(need - 1))
        with pytest.raises(Gen3cMemoryError, match=r"^the preview's fill cloud grows to [0-9,]+ points at frame \d+ of 12 \(48×64: the cameras keep "
                           r"seeing parts no earlier frame filled\) and with the frames needs 0\.0 GB of CPU memory; with the 0\.0 GB this process holds "
                           r"already, 0\.0 GB, and this machine has 0\.0 GB of RAM and swap: make fewer frames at once \(gen3c generate --chunk_frames; in Python generate_video\(\.\.\., chunk_frames=N\)\): "
                           r"each chunk starts a new fill cloud$"):
            PreviewGenerator(margin=0).generate(cache, cams, src.image, progress=written.append)
    # Exactly enough: the frames written before the last growth are in what the process holds and
    # are not asked for again (counted twice, this run that fits was refused at frame 8).
    written.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(preview, "FRAME_WORK_BYTES", 0)
        patch.setattr(memory.HostMemory, "now", machine(need))
        assert torch.equal(PreviewGenerator(margin=0).generate(cache, cams, src.image, progress=written.append), expected)
    assert len(written) == 12


def test_a_fill_cloud_that_fits_only_past_the_free_memory_is_noted_once_a_chunk():
    """The cloud grows by half when full, a few times a chunk, and each growth past the memory
    free now said the same note again with a larger number (four in 12 frames here): it is said
    once, and a later growth past the machine's memory is still refused."""
    import warnings

    from gen3c.errors import Gen3cMemoryError
    from gen3c.models import memory

    texture, depth, K = textured_strip(48, 64)
    src = prepare_source(texture, depth, K, (48, 64))
    cams = sliding_cameras(src.K, 48, 64, [0.6 * i for i in range(12)])  # new holes every frame: the cloud grows 4 times
    cache = build_cache([src])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory.HostMemory, "now", classmethod(lambda cls: memory.HostMemory(available=1, total=2**40)))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            PreviewGenerator(margin=0).generate(cache, cams, src.image)
    notes = [str(w.message) for w in caught if "fill cloud grows" in str(w.message)]
    assert len(notes) == 1, notes
    assert notes[0].startswith("the preview's fill cloud grows to ") and " GB are free now: the system may stop the run" in notes[0]
    limit = []  # the first growth fits (noted), a later one does not: refused all the same

    def now(cls):
        limit.append(None)
        return memory.HostMemory(available=1, total=2**40 if len(limit) <= 3 else 1)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory.HostMemory, "now", classmethod(now))
        with warnings.catch_warnings(record=True), pytest.raises(Gen3cMemoryError, match=r"^the preview's fill cloud grows to "):
            warnings.simplefilter("always")
            PreviewGenerator(margin=0).generate(cache, cams, src.image)


def test_a_view_past_the_frame_that_cannot_fit_is_refused_in_one_line(monkeypatch):
    from gen3c.errors import Gen3cMemoryError
    from gen3c.models import memory

    # 16 bytes a channel for each pixel of the largest tile and of its window, and of one pixel in 64
    # of the whole band. The part asked for, 3876 × 8610 pixels, is made in 3 × 2 tiles of 1292 ×
    # 4305; the middle row's windows reach 8 cells of 16 rows past their tiles (1568 rows), the
    # right-hand ones from column 7680 (a 512-column step, 8 cells left of the tile) to the band's
    # right side, 5120 columns, as 8 cells past the tile come within a step of it.
    band = extension_bytes(16, 7680, 3840, (3840, 20, 30, 900))
    assert band == 16 * 4 * (1292 * 4305 + 1568 * 5120 + (16 + 7680) * (7680 * 2) // 64)
    # ... and 120 bytes for each of its pixels past the frame, the points later frames may render.
    need = band + 120 * ((16 + 3860) * (7680 + 930) - 16 * 7680)
    monkeypatch.setattr(memory.HostMemory, "now", classmethod(lambda cls: memory.HostMemory(available=need - 1, total=need - 1)))
    gb = f"{need / 2**30:.1f}"
    with pytest.raises(Gen3cMemoryError, match=rf"^the preview's view past the first frame \(16×7680, extended 3840, 20, 30 and 900 pixels past its top, bottom, left and right, "
                       rf"as far as the later cameras look\) needs {gb} GB of CPU memory, "
                       rf"with the up to 33,249,480 points of it that later frames render, and the frames; with the 0\.0 GB this process holds already, {gb} GB, "
                       rf"and this machine has {gb} GB of RAM and swap: pass a smaller --resolution, "
                       r"or a camera path that looks less far past the first frame$"):
        check_extension_fits(16, 7680, 3840, (3840, 20, 30, 900), to_come=0)
    monkeypatch.setattr(memory.HostMemory, "now", classmethod(lambda cls: memory.HostMemory(available=need, total=need)))
    check_extension_fits(16, 7680, 3840, (3840, 20, 30, 900), to_come=0)
    with pytest.raises(Gen3cMemoryError):  # ... and not beside a byte of the chunk's frames to come
        check_extension_fits(16, 7680, 3840, (3840, 20, 30, 900), to_come=1)
    monkeypatch.setattr(memory.HostMemory, "now", classmethod(lambda cls: memory.HostMemory(available=need, total=need, held=1)))
    with pytest.raises(Gen3cMemoryError):  # ... nor beside a byte this process holds
        check_extension_fits(16, 7680, 3840, (3840, 20, 30, 900), to_come=0)
