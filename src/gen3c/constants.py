"""Values that several layers share — GEN3C's defaults and the names of modes a setting takes —
kept here, without torch, so that the modules implementing them (:mod:`gen3c.cache`,
:mod:`gen3c.trajectories`, :mod:`gen3c.io.images`, :mod:`gen3c.pipelines.camera_video`) and the
checks of a run's settings (:mod:`gen3c.pipelines.settings`, which must not import torch) read one
list each."""

#: Frames of one GEN3C generation; chunks overlap by one frame.
GEN3C_CHUNK_FRAMES = 121
#: The most frames a run may ask for (``num_video_frames``).
MAX_FRAMES = 100_000
#: GEN3C's ``movement_distance`` of a preset path (:mod:`gen3c.trajectories`).
DEFAULT_MOVEMENT_DISTANCE = 0.3
#: How points are splatted into the cache's renders (:mod:`gen3c.cache`).
SPLAT_MODES = ("bilinear", "zbuffer")
#: How an input is brought to the working resolution (:func:`gen3c.io.images.resize_image`).
RESIZE_MODES = ("crop", "stretch")
#: Depth files (``--depth_path``) whose 16-bit integer values ``--png_depth_scale`` scales
#: (:func:`gen3c.io.depth.load_depth`; a 32-bit float TIFF holds depth itself).
SCALED_DEPTH_SUFFIXES = (".png", ".tif", ".tiff")
