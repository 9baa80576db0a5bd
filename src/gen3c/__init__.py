"""gen3c: camera-controlled video generation guided by a 3D cache (GEN3C, CVPR 2025)."""

from gen3c.errors import Gen3cInputError, Gen3cModelError

__version__ = "0.1.0"

__all__ = ["Gen3cInputError", "Gen3cModelError", "__version__"]
