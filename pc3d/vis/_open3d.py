"""The one place pc3d imports open3d (lazily), and the checks for a usable display.

Findings on open3d 0.20 (Debian 12, Mesa 22.3, no GPU), which shaped the renderer:

- The legacy `Visualizer.create_window(visible=False)` renders off-screen under Xvfb, and with no
  `DISPLAY` at all it falls back by itself to an EGL (Mesa llvmpipe) context. Points come out
  pixel-identical on both; OpenGL lines wider than 1 px only work on EGL, which is why boxes are
  rasterised by pc3d instead (`pc3d.vis.overlays.draw_boxes`). When neither works,
  `create_window` returns False (going on would crash), so we stop there with
  `DisplayUnavailableError`.
- `open3d.visualization.rendering.OffscreenRenderer` (Filament) fails here with "Failed to load
  vulkan library!", with or without Xvfb: the pip wheel's Filament wants Vulkan
  (`libvulkan1` + `mesa-vulkan-drivers`). It is therefore not used; see docs/vis.md.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from pc3d.errors import MissingDependencyError, Pc3dError

_DEBIAN_PACKAGES = "libusb-1.0-0 libgl1 libegl1 libgomp1"


class DisplayUnavailableError(Pc3dError, RuntimeError):
    """Neither a display (X11/Xvfb) nor a working EGL driver is available for rendering."""


def import_open3d() -> ModuleType:
    """The `open3d` module, quiet (errors only); `MissingDependencyError` saying how to install it."""
    try:
        import open3d
    except ImportError as err:
        raise MissingDependencyError(
            f"pc3d.vis needs open3d, which failed to import ({err}). Install it with "
            f"`pip install 'pc3d[vis]'` (or `pip install open3d`); on Debian/Ubuntu it also needs "
            f"the system packages `apt-get install {_DEBIAN_PACKAGES}`."
        ) from err
    # Open3D logs every fallback (GLFW, EGL) as a warning; pc3d reports real failures itself.
    open3d.utility.set_verbosity_level(open3d.utility.VerbosityLevel.Error)
    return open3d


# Native stderr lines that are harmless on a display-less machine: GLFW probes Wayland first and
# libwayland complains before Open3D falls back to X11/EGL.
_NOISE = ("XDG_RUNTIME_DIR is invalid",)


@contextlib.contextmanager
def filtered_native_stderr() -> Iterator[None]:
    """Drop known-harmless lines that native code writes to file descriptor 2; keep the rest."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not any(n in line for n in _NOISE)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def create_window(vis: Any, title: str, width: int, height: int, visible: bool) -> bool:
    """`vis.create_window(...)` with the harmless native noise filtered out; its success flag."""
    with filtered_native_stderr():
        return bool(vis.create_window(window_name=title, width=width, height=height, visible=visible))


def offscreen_help(command: str | None = None) -> str:
    """What to install or run when an off-screen window cannot be created."""
    run = command or "pc3d show ... --out shot.png"
    return (
        "could not create an off-screen OpenGL context: no X display is reachable "
        f"(DISPLAY={os.environ.get('DISPLAY', '<unset>')}) and EGL rendering failed. Either run "
        f"under a virtual display: `apt-get install xvfb xauth` then `xvfb-run -a {run}`, or "
        "install Mesa's EGL driver for display-less rendering: `apt-get install libegl1 libegl-mesa0 "
        "libgl1-mesa-dri`."
    )


def check_interactive_display() -> None:
    """`DisplayUnavailableError` when a window cannot be shown (Linux without X11/Wayland)."""
    if not sys.platform.startswith("linux"):
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    raise DisplayUnavailableError(
        "no display for an interactive window (DISPLAY is not set). Render to a file instead with "
        "`--out shot.png` (works without a screen), or connect with X forwarding (`ssh -X`)."
    )
