"""Evaluation metrics: small batched functions over videos in gen3c's conventions.

Images are (B, 3, H, W) in [−1, 1] (the pipeline's range); every colour metric is computed on
the [0, 1] scale (data range 1, so PSNR matches the usual 8-bit figure); images holding NaN or
±∞ are refused (ValueError), as 8-bit ones are. Cameras, poses and
depth follow :mod:`gen3c.cameras` (OpenCV, world-to-camera, z-depth).

- :func:`psnr`, :func:`ssim` (and :func:`ssim_map`, :func:`squared_error_map`): image quality,
  optionally restricted to a mask, e.g. the pixels the source view saw (:func:`source_visibility`).
- :func:`warp_error`: temporal consistency — each frame compared with the next one warped back
  through the ground-truth depth and the commanded cameras (reprojection).
- :func:`camera_errors`: camera accuracy — each frame's camera recovered by PnP against the
  known cache (corners of frame 0 lifted with the source depth, tracked by Lucas–Kanade, OpenCV's
  ``solvePnPRansac``) against the commanded one: rotation error and direction-of-motion error in
  degrees, camera-centre distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gen3c.cameras import Cameras, project_points, rotation_angle_degrees, unproject_depth
from gen3c.summary import dataclass_repr

# SSIM's constants for data range 1 (Wang et al. 2004): C1 = (0.01 L)², C2 = (0.03 L)².
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def _check_images(pred: Tensor, target: Tensor) -> None:
    if pred.ndim != 4 or pred.shape != target.shape:
        raise ValueError(f"images must be (B, C, H, W) of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")


def _check_frames_and_cameras(frames: Tensor, cameras: Cameras) -> tuple[int, int, int]:
    """(T, H, W) of a (T, 3, H, W) video with one camera per frame, made for its size; else one
    line naming both (one camera too many was used silently, too few failed with an IndexError)."""
    if frames.ndim != 4:
        raise ValueError(f"frames must be a (T, 3, H, W) video, got shape {tuple(frames.shape)}")
    T, _, H, W = frames.shape
    _check_cameras("the video has", T, H, W, cameras)
    return T, H, W


def _check_cameras(what: str, T: int, H: int, W: int, cameras: Cameras) -> None:
    if len(cameras) != T or (cameras.height, cameras.width) != (H, W):
        raise ValueError(
            f"{what} {T} frames of {H}×{W} but {len(cameras)} cameras of {cameras.height}×{cameras.width}: "
            "pass one camera per frame, for the frames' size"
        )


def _check_map(name: str, values: Tensor | None, shape: tuple[int, ...]) -> None:
    """``values`` (if given) has ``shape``, else one line naming both."""
    if values is not None and tuple(values.shape) != shape:
        raise ValueError(f"{name} has shape {tuple(values.shape)} but the video needs {shape}")


def to_unit(images: Tensor) -> Tensor:
    """[−1, 1] → [0, 1], clamped, float32. Integer images (8-bit 0 … 255) are refused: clamped
    as if in [−1, 1], almost every value would read as white and the scores be silently wrong."""
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [−1, 1], got {images.dtype}: convert 8-bit ones with x.float() / 127.5 - 1")
    _check_finite(images)
    return ((images.float() + 1.0) * 0.5).clamp(0.0, 1.0)


def _check_finite(images: Tensor) -> None:
    """One line when ``images`` hold NaN or ±∞: clamped, an infinite value read as black or white
    (a finite, plausible score), and a NaN made the score NaN, which reads as "no such score"
    (an empty mask) and drops out of a mean over cases (:func:`nanmean`)."""
    bad = ~torch.isfinite(images)
    if bool(bad.any()):
        raise ValueError(
            f"images hold {int(bad.sum())} NaN or infinite values (of {images.numel()}), which have no score: "
            "check what made them (its precision, its weights)"
        )


def squared_error_map(pred: Tensor, target: Tensor) -> Tensor:
    """Per-pixel squared error on the [0, 1] scale, averaged over channels.

    Args:
        pred, target: (B, C, H, W) in [−1, 1].
    Returns:
        (B, H, W).
    """
    _check_images(pred, target)
    return ((to_unit(pred) - to_unit(target)) ** 2).mean(dim=1)


def masked_mean(values: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean of ``values`` (B, H, W) over the True pixels of ``mask`` (B, H, W) per image: (B,);
    NaN for an image with no True pixel."""
    if mask is None:
        return values.flatten(1).mean(dim=1)
    if mask.shape != values.shape:  # a (B, 1, H, W) one broadcast to (B, B, H, W): every image scored over every image's pixels
        raise ValueError(f"mask has shape {tuple(mask.shape)} but the images' pixels {tuple(values.shape)}: pass one (H, W) map per image")
    m = mask.to(values.dtype)
    count = m.flatten(1).sum(dim=1)
    total = (values * m).flatten(1).sum(dim=1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, math.nan))


def psnr_from_mse(mse: Tensor | float) -> Tensor:
    """PSNR in dB for data range 1: ``10 log10(1 / mse)`` (+inf for mse 0, NaN stays NaN)."""
    mse = torch.as_tensor(mse, dtype=torch.float64)
    return 10.0 * torch.log10(1.0 / mse)


def psnr(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Peak signal-to-noise ratio per image, over all pixels or the True pixels of ``mask``.

    Args:
        pred, target: (B, C, H, W) in [−1, 1].
        mask: optional (B, H, W) bool.
    Returns:
        (B,) float64 dB; +inf for identical images, NaN where the mask is empty.

    Example:
        >>> x = torch.zeros(1, 3, 4, 4)
        >>> round(float(psnr(x + 0.2, x)), 2)  # error 0.1 on the [0, 1] scale
        20.0
    """
    return psnr_from_mse(masked_mean(squared_error_map(pred, target), mask))


def ssim_map(pred: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Structural similarity per pixel (Wang et al. 2004) with a Gaussian window, on [0, 1].

    Local statistics use a ``window``-tap Gaussian of std ``sigma`` (the standard 11 / 1.5)
    with mirrored borders (OpenCV's ``GaussianBlur``, far faster on a CPU than a convolution
    in torch), so the map has the image's size and can be averaged over any mask; channels are
    averaged.

    Args:
        pred, target: (B, C, H, W) in [−1, 1].
    Returns:
        (B, H, W) float32, 1 where the images agree.
    """
    _check_images(pred, target)
    # Moments of values centred on 0.5 (variance and covariance do not change) halve the
    # float32 cancellation in E[x²] − E[x]², which matters next to C2 = 9e-4.
    x, y = to_unit(pred).cpu() - 0.5, to_unit(target).cpu() - 0.5
    B, C, H, W = x.shape
    planes = torch.cat([x, y, x * x, y * y, x * y], dim=1).reshape(-1, H, W).numpy()
    blurred = np.stack([cv2.GaussianBlur(p, (window, window), sigma, borderType=cv2.BORDER_REFLECT_101) for p in planes])
    mx, my, xx, yy, xy = torch.from_numpy(blurred).view(B, 5 * C, H, W).split(C, dim=1)
    vx, vy, cov = xx - mx * mx, yy - my * my, xy - mx * my
    mx, my = mx + 0.5, my + 0.5
    num = (2 * mx * my + SSIM_C1) * (2 * cov + SSIM_C2)
    den = (mx * mx + my * my + SSIM_C1) * (vx + vy + SSIM_C2)
    return (num / den).mean(dim=1)


def ssim(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean SSIM per image over all pixels or the True pixels of ``mask`` (B, H, W): (B,)."""
    return masked_mean(ssim_map(pred, target), mask)


# --------------------------------------------------------------------------------------------
# What the source view saw
# --------------------------------------------------------------------------------------------


def _sample_nearest4(image: Tensor, uv: Tensor) -> Tensor:
    """Values of ``image`` (H, W) at the 4 pixels around each position ``uv`` (N, 2): (N, 4),
    NaN outside the image."""
    H, W = image.shape
    x0, y0 = torch.floor(uv[:, 0]).long(), torch.floor(uv[:, 1]).long()
    out = []
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        x, y = x0 + dx, y0 + dy
        inside = (x >= 0) & (x < W) & (y >= 0) & (y < H)
        v = image[y.clamp(0, H - 1), x.clamp(0, W - 1)]
        out.append(torch.where(inside, v, torch.full_like(v, math.nan)))
    return torch.stack(out, dim=1)


def source_visibility(
    target_depth: Tensor,
    cameras: Cameras,
    source_depth: Tensor,
    source_K: Tensor,
    source_w2c: Tensor,
    source_valid: Tensor | None = None,
    tolerance: float = 0.03,
) -> Tensor:
    """Target pixels whose surface point the source view saw: the "seen" mask (the rest is
    disoccluded), decided exactly from ground-truth geometry.

    A target pixel is seen when its surface point (from ``target_depth``) projects inside the
    source image in front of the camera and one of the 4 source pixels around the projection
    is valid with a depth within ``tolerance`` (relative) of the point's: nothing nearer hides
    it there. Pixels without a surface (infinite depth, e.g. sky) are never seen.

    Args:
        target_depth: (T, H, W) ground-truth z-depth of the target frames (+inf or ≤ 0: no surface).
        cameras: the T target cameras.
        source_depth: (Hs, Ws) source z-depth; source_K (3, 3), source_w2c (4, 4).
        source_valid: optional (Hs, Ws) bool, the source pixels the cache keeps (e.g. its edge filter).
    Returns:
        (T, H, W) bool.
    """
    # Else one camera served every frame, or another size's intrinsics, silently.
    if target_depth.ndim != 3:
        raise ValueError(f"target_depth must be (T, H, W) depth maps, got shape {tuple(target_depth.shape)}")
    T, H, W = target_depth.shape
    _check_cameras("target_depth has", T, H, W, cameras)
    _check_map("source_valid", source_valid, tuple(source_depth.shape))
    depth = target_depth.float()
    has_surface = torch.isfinite(depth) & (depth > 0)
    src_depth = source_depth.float().clone()
    bad = ~(torch.isfinite(src_depth) & (src_depth > 0))
    if source_valid is not None:
        bad |= ~source_valid.bool()
    src_depth[bad] = math.nan
    points = unproject_depth(torch.where(has_surface, depth, torch.ones_like(depth)), cameras.K.float(), cameras.w2c.float())
    seen = torch.zeros(T, H, W, dtype=torch.bool)
    for t in range(T):
        uv, z = project_points(points[t].reshape(1, -1, 3), source_K.float()[None], source_w2c.float()[None])
        uv, z = uv[0], z[0]
        near = _sample_nearest4(src_depth, uv)
        match = ((near - z[:, None]).abs() <= tolerance * z[:, None]).any(dim=1)
        seen[t] = (match & (z > 1e-6) & has_surface[t].reshape(-1)).view(H, W)
    return seen


# --------------------------------------------------------------------------------------------
# Temporal consistency
# --------------------------------------------------------------------------------------------


def warp_error(
    frames: Tensor, depth: Tensor, cameras: Cameras, tolerance: float = 0.02, chunk: int = 8
) -> tuple[Tensor, Tensor]:
    """Reprojection warp error between consecutive frames.

    Each pixel of frame t with a surface (``depth``) is moved through the ground-truth 3D point
    into camera t + 1, where frame t + 1 is sampled bilinearly; pixels that leave the image or
    are hidden there (the point's depth in camera t + 1 differs from ``depth[t + 1]`` at that
    pixel by more than ``tolerance``, relative) are left out. A video consistent with the scene
    and the cameras has error ≈ 0 (resampling only); flicker, drift or wrong motion raise it.

    Args:
        frames: (T, 3, H, W) in [−1, 1], T ≥ 2.
        depth: (T, H, W) ground-truth z-depth of the frames (+inf where no surface).
        cameras: the T cameras.
        chunk: frame pairs processed together (bounds memory).
    Returns:
        ``(error, coverage)``: (T − 1,) mean absolute colour difference on the [0, 1] scale
        (NaN where no pixel is comparable) and (T − 1,) the share of pixels compared.
    """
    T, H, W = _check_frames_and_cameras(frames, cameras)
    _check_map("depth", depth, (T, H, W))
    if T < 2:
        raise ValueError("warp_error needs at least 2 frames")
    errors, coverage = torch.empty(T - 1, dtype=torch.float64), torch.empty(T - 1, dtype=torch.float64)
    # Colours and depths are converted per chunk: a whole video's copies would cost 17 bytes per pixel and frame.
    for start in range(0, T - 1, chunk):
        a = torch.arange(start, min(T - 1, start + chunk))
        b = a + 1
        d_a, d_b = depth[a].float(), depth[b].float()
        has_surface = torch.isfinite(d_a) & (d_a > 0)
        safe = torch.where(has_surface, d_a, torch.ones_like(d_a))
        points = unproject_depth(safe, cameras.K[a].float(), cameras.w2c[a].float()).reshape(len(a), -1, 3)
        uv, z = project_points(points, cameras.K[b].float(), cameras.w2c[b].float())
        u, v = uv[..., 0], uv[..., 1]
        inside = (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1) & (z > 1e-6)
        nearest = torch.gather(d_b.reshape(len(a), -1), 1, (v.round().long().clamp(0, H - 1) * W + u.round().long().clamp(0, W - 1)))
        valid = inside & ((nearest - z).abs() <= tolerance * z) & has_surface.reshape(len(a), -1)
        # grid_sample's align_corners=True puts −1 and 1 on the centres of the border pixels.
        grid = torch.stack([u / (W - 1) * 2 - 1, v / (H - 1) * 2 - 1], dim=-1).view(len(a), H, W, 2)
        warped = F.grid_sample(to_unit(frames[b]), grid, mode="bilinear", align_corners=True)
        diff = (warped - to_unit(frames[a])).abs().mean(dim=1).reshape(len(a), -1)
        count = valid.sum(dim=1)
        errors[a] = torch.where(count > 0, (diff * valid).sum(dim=1) / count.clamp(min=1), math.nan).double()
        coverage[a] = (count / (H * W)).double()
    return errors, coverage


# --------------------------------------------------------------------------------------------
# Camera accuracy
# --------------------------------------------------------------------------------------------


def _gray_uint8(image: Tensor) -> np.ndarray:
    rgb = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def track_points(frames: Tensor, allowed: Tensor | None = None, max_points: int | None = None, fb_tolerance: float = 1.0) -> tuple[Tensor, Tensor]:
    """Track corners of frame 0 through the video (pyramidal Lucas–Kanade, OpenCV).

    Shi–Tomasi corners of frame 0 (inside ``allowed``) are followed frame to frame; a track
    ends at the first frame where it is lost or fails the forward–backward check (tracking back
    lands more than ``fb_tolerance`` pixels from where it started).

    Args:
        frames: (T, 3, H, W) in [−1, 1].
        allowed: optional (H, W) bool, where frame-0 corners may start.
        max_points: corners to start from (default: one per ~70 pixels).
    Returns:
        ``(points, alive)``: (T, N, 2) pixel positions (u, v) and (T, N) bool, True while the
        track holds. Row 0 holds the corners, rounded to pixel centres.
    """
    T, _, H, W = frames.shape
    _check_finite(frames)  # (rounded to 8 bits, NaN would be tracked as black)
    gray = [_gray_uint8(f) for f in frames]
    mask = None if allowed is None else allowed.cpu().numpy().astype(np.uint8) * 255
    n = max_points or max(200, H * W // 70)
    corners = cv2.goodFeaturesToTrack(gray[0], n, qualityLevel=1e-3, minDistance=max(3.0, W / 160), mask=mask)
    if corners is None:
        return torch.zeros(T, 0, 2), torch.zeros(T, 0, dtype=torch.bool)
    pts = np.unique(corners.reshape(-1, 2).round(), axis=0).astype(np.float32)
    N = pts.shape[0]
    track = np.zeros((T, N, 2), np.float32)
    alive = np.zeros((T, N), bool)
    track[0], alive[0] = pts, True
    lk = {"winSize": (21, 21), "maxLevel": 3, "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)}
    for t in range(1, T):
        prev_alive = alive[t - 1]
        if not prev_alive.any():
            break
        p0 = track[t - 1, prev_alive].reshape(-1, 1, 2)
        p1, st, _ = cv2.calcOpticalFlowPyrLK(gray[t - 1], gray[t], p0, None, **lk)
        back, st_b, _ = cv2.calcOpticalFlowPyrLK(gray[t], gray[t - 1], p1, None, **lk)
        ok = (st[:, 0] == 1) & (st_b[:, 0] == 1) & (np.linalg.norm((back - p0)[:, 0], axis=1) < fb_tolerance)
        p1 = p1[:, 0]
        ok &= (p1[:, 0] >= 0) & (p1[:, 0] <= W - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= H - 1)
        idx = np.flatnonzero(prev_alive)
        track[t, idx] = p1
        alive[t, idx] = ok
    return torch.from_numpy(track), torch.from_numpy(alive)


def translation_angle_degrees(t_a: Tensor, t_b: Tensor) -> Tensor:
    """Angle (degrees) between translation directions (*B, 3); scale and length do not matter."""
    cos = F.cosine_similarity(t_a.double(), t_b.double(), dim=-1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cos))


@dataclass
class CameraErrors:
    """Camera accuracy of a video against its commanded cameras, per frame t ≥ 1.

    Attributes:
        rotation: (T − 1,) geodesic angle (degrees) between the recovered and the commanded
            rotation; NaN where the pose could not be recovered.
        translation: (T − 1,) angle (degrees) between the recovered and the commanded direction
            of motion from frame 0 (camera centre displacement); NaN where either displacement
            is shorter than ``min_baseline`` (no direction to compare) or the pose failed.
        center: (T − 1,) distance between recovered and commanded camera centres, in scene
            units; NaN where the pose failed.
        failed: (T − 1,) bool, frames whose pose could not be recovered.
        points: number of frame-0 corners tracked.
    """

    rotation: Tensor
    translation: Tensor
    center: Tensor
    failed: Tensor
    points: int = 0

    __repr__ = dataclass_repr


def camera_errors(
    frames: Tensor,
    cameras: Cameras,
    source_depth: Tensor,
    source_valid: Tensor | None = None,
    *,
    min_baseline: float = 0.0,
    min_inliers: int = 10,
    reprojection_error: float | None = None,
) -> CameraErrors:
    """Recover each frame's camera from the images (PnP against the known cache) and compare
    it with the commanded one.

    Corners of frame 0 — the source view, whose depth the cache holds — are lifted to 3D with
    ``source_depth`` and tracked through the video (:func:`track_points`); in every frame
    ``cv2.solvePnPRansac`` finds the camera that sees those 3D points where the video shows
    them. A video that follows the commanded path gives errors ≈ 0; one that moves the wrong
    way, too little or not at all shows it in the rotation, direction and centre errors.

    Args:
        frames: (T, 3, H, W) in [−1, 1]; frame 0 shows the source view.
        cameras: the T commanded cameras; frame 0's is the source camera.
        source_depth: (H, W) z-depth of the source view (≤ 0 or non-finite: none).
        source_valid: optional (H, W) bool, where corners may be lifted (e.g. away from depth edges).
        min_baseline: shortest camera displacement (scene units) whose direction is compared.
        min_inliers: fewer RANSAC inliers than this, or fewer of them that the final pose puts
            in front of the camera within ``reprojection_error``, is a failed pose.
        reprojection_error: RANSAC threshold in pixels (default: width / 160, 2 px at 320).
    """
    T, H, W = _check_frames_and_cameras(frames, cameras)
    _check_map("source_depth", source_depth, (H, W))
    _check_map("source_valid", source_valid, (H, W))
    depth = source_depth.float().cpu()
    allowed = torch.isfinite(depth) & (depth > 0)
    if source_valid is not None:
        allowed &= source_valid.bool().cpu()
    track, alive = track_points(frames, allowed)
    # Corners start on pixel centres, where the source depth lifts them to 3D exactly.
    uv0 = track[0]
    iu, iv = uv0[:, 0].long(), uv0[:, 1].long()
    world = unproject_depth(torch.where(allowed, depth, torch.ones_like(depth)).double(), cameras.K[0].double(), cameras.w2c[0].double())[iv, iu]
    threshold = reprojection_error or max(1.0, W / 160)
    centers = cameras.centers.double()
    rot, trans, dist, failed = [], [], [], []
    for t in range(1, T):
        R_est, c_est = _pnp(world[alive[t]], track[t][alive[t]], cameras.K[t], threshold, min_inliers)
        if R_est is None:
            rot.append(math.nan)
            trans.append(math.nan)
            dist.append(math.nan)
            failed.append(True)
            continue
        failed.append(False)
        rot.append(float(rotation_angle_degrees(R_est, cameras.w2c[t, :3, :3].double())))
        dist.append(float((c_est - centers[t]).norm()))
        move_cmd, move_est = centers[t] - centers[0], c_est - centers[0]
        if min(float(move_cmd.norm()), float(move_est.norm())) <= max(min_baseline, 1e-9):
            trans.append(math.nan)
        else:
            trans.append(float(translation_angle_degrees(move_est, move_cmd)))
    f64 = torch.float64
    return CameraErrors(
        torch.tensor(rot, dtype=f64), torch.tensor(trans, dtype=f64), torch.tensor(dist, dtype=f64), torch.tensor(failed, dtype=torch.bool),
        points=int(uv0.shape[0]),
    )


def _pnp(world: Tensor, uv: Tensor, K: Tensor, threshold: float, min_inliers: int) -> tuple[Tensor | None, Tensor | None]:
    """World-to-camera rotation (3, 3) and camera centre (3,) from 3D–2D matches, or Nones."""
    if world.shape[0] < max(min_inliers, 6):
        return None, None
    obj = np.ascontiguousarray(world.numpy(), dtype=np.float64)
    img = np.ascontiguousarray(uv.double().numpy(), dtype=np.float64)
    Kn = K.double().cpu().numpy()
    ok, rvec, tvec, inliers = cv2.solvePnPRansac(
        obj, img, Kn, None, iterationsCount=300, reprojectionError=threshold, confidence=0.999, flags=cv2.SOLVEPNP_EPNP
    )
    if not ok or inliers is None or len(inliers) < min_inliers:
        return None, None
    idx = inliers[:, 0]
    rvec, tvec = cv2.solvePnPRefineLM(obj[idx], img[idx], Kn, None, rvec, tvec)
    # RANSAC's returned pose is EPnP re-solved on all its inliers, which nearly coplanar points
    # can throw far off (a camera 10¹² away that fits none of them): such a pose is a failure too.
    R_np = cv2.Rodrigues(rvec)[0]
    in_front = obj[idx] @ R_np[2] + tvec[2, 0] > 0
    projected = cv2.projectPoints(obj[idx], rvec, tvec, Kn, None)[0][:, 0]
    fits = in_front & (np.linalg.norm(projected - img[idx], axis=1) <= threshold)
    if int(fits.sum()) < min_inliers:
        return None, None
    R = torch.from_numpy(R_np)
    t = torch.from_numpy(tvec[:, 0])
    return R, -R.T @ t


def nanmean(values: Tensor | list[float]) -> float:
    """Mean of the values that are not NaN (a score that does not exist), NaN if there are none.
    An infinite value is a score and stays in: the PSNR of identical images (+∞) makes the mean +∞."""
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    v = v[~torch.isnan(v)]
    return float(v.mean()) if v.numel() else math.nan
