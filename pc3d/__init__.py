"""pc3d: 3D point-cloud detection and coordinate toolkit.

Boxes and points in the LiDAR, Camera and Depth systems (MMDetection3D 1.x conventions), exact
conversions between them, point-cloud and KITTI I/O, vectorised ops, and models loaded as plugins.
"""

from pc3d.errors import Pc3dError

__version__ = "0.1.0"
__all__ = ["Pc3dError", "__version__"]
