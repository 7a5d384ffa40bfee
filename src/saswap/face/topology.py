"""Topology of MediaPipe's face mesh: triangles, region outlines and the left-right mirror table.

Triangles are the 3-cliques of MediaPipe's published tessellation edges. The mirror table was derived
from data by ``tools/derive_mesh_mirror.py`` (each vertex's partner across the face's mid-plane;
vertices on the mid-plane, and the two with no mutual partner, map to themselves).
"""

from __future__ import annotations

import functools
from collections import defaultdict

import numpy as np

__all__ = ["MESH_MIRROR", "mesh_triangles", "eye_triangles", "region_loop", "REGIONS"]

# fmt: off
MESH_MIRROR: tuple[int, ...] = (
    0, 1, 2, 248, 4, 5, 6, 249, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
    250, 251, 252, 253, 254, 255, 256, 257, 258, 259, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269,
    270, 271, 272, 273, 274, 275, 276, 277, 278, 279, 280, 281, 282, 283, 284, 285, 286, 287, 288, 289,
    290, 61, 306, 293, 294, 295, 296, 297, 298, 299, 300, 301, 302, 303, 304, 305, 291, 307, 292, 309,
    310, 311, 312, 313, 314, 315, 316, 317, 318, 319, 320, 321, 322, 323, 94, 324, 325, 326, 327, 328,
    329, 330, 331, 332, 333, 334, 335, 336, 337, 338, 339, 340, 341, 342, 343, 344, 345, 346, 347, 348,
    349, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 360, 361, 362, 363, 364, 365, 366, 367, 368,
    369, 370, 371, 372, 373, 374, 375, 376, 377, 378, 379, 151, 152, 380, 381, 382, 383, 384, 385, 386,
    387, 388, 389, 390, 164, 391, 392, 393, 168, 394, 395, 396, 397, 398, 399, 175, 400, 401, 402, 403,
    404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 195, 419, 197, 420, 199,
    200, 421, 422, 423, 424, 425, 426, 427, 428, 429, 430, 431, 432, 433, 434, 435, 436, 437, 438, 439,
    440, 441, 442, 443, 444, 445, 446, 447, 448, 449, 450, 451, 452, 453, 454, 455, 456, 457, 458, 459,
    460, 461, 462, 463, 464, 465, 466, 467, 3, 7, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29,
    30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49,
    50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 76, 78, 63, 64, 65, 66, 67, 68, 69,
    70, 71, 72, 73, 74, 75, 62, 77, 308, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89,
    90, 91, 92, 93, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110,
    111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128, 129, 130,
    131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144, 145, 146, 147, 148, 149, 150,
    153, 154, 155, 156, 157, 158, 159, 160, 161, 162, 163, 165, 166, 167, 169, 170, 171, 172, 173, 174,
    176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191, 192, 193, 194, 196,
    198, 201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213, 214, 215, 216, 217, 218, 219,
    220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239,
    240, 241, 242, 243, 244, 245, 246, 247,
)
# fmt: on

#: MediaPipe connection sets naming each region whose outline we need.
REGIONS = ("FACE_OVAL", "LIPS", "LEFT_EYE", "RIGHT_EYE", "LEFT_EYEBROW", "RIGHT_EYEBROW", "LEFT_IRIS", "RIGHT_IRIS")


@functools.lru_cache(maxsize=1)
def mesh_connections():
    """MediaPipe's face-mesh connection sets (the module with ``FACEMESH_TESSELATION``, ``FACEMESH_LIPS``, ...).

    Read from the installed package's constants module on its own: imported the usual way, through
    ``mediapipe.python.solutions``, it brings every solution of mediapipe and matplotlib with it, about a third of a
    second of every start (a swap from a template cache, each frame worker process) for a few sets of vertex pairs.
    The module imports nothing; where it cannot be found as a file, it is imported the usual way.

    Example:
        >>> len(mesh_connections().FACEMESH_TESSELATION)
        2556
    """
    import importlib.util
    import sys
    from pathlib import Path

    name = "mediapipe.python.solutions.face_mesh_connections"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec("mediapipe")  # a top-level package is found without being imported
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(root) / "python" / "solutions" / "face_mesh_connections.py"
        if path.is_file():
            found = importlib.util.spec_from_file_location("saswap.face._mesh_connections", path)
            if found is not None and found.loader is not None:
                module = importlib.util.module_from_spec(found)
                found.loader.exec_module(module)
                return module
    import mediapipe.python.solutions.face_mesh_connections as module

    return module


def _connections(name: str) -> frozenset:
    return getattr(mesh_connections(), f"FACEMESH_{name}")


@functools.lru_cache(maxsize=1)
def mesh_triangles() -> np.ndarray:
    """Triangles of the 468-vertex mesh, shape (F, 3), int32 (each vertex triple sorted)."""
    adjacency: dict[int, set[int]] = defaultdict(set)
    edges = _connections("TESSELATION")
    for a, b in edges:
        adjacency[a].add(b)
        adjacency[b].add(a)
    tris = {tuple(sorted((a, b, c))) for a, b in edges for c in adjacency[a] & adjacency[b]}
    return np.array(sorted(tris), dtype=np.int32)


def _loops(edges) -> list[list[int]]:
    adjacency: dict[int, list[int]] = defaultdict(list)
    for a, b in edges:
        adjacency[a].append(b)
        adjacency[b].append(a)
    seen: set[int] = set()
    loops = []
    for start in sorted(adjacency):
        if start in seen:
            continue
        loop, prev, cur = [start], None, start
        seen.add(start)
        while True:
            nxt = [n for n in adjacency[cur] if n != prev and (n not in seen or (n == start and len(loop) > 2))]
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            if cur == start:
                break
            loop.append(cur)
            seen.add(cur)
        loops.append(loop)
    return loops


@functools.lru_cache(maxsize=None)
def region_loop(name: str, which: str = "outer") -> tuple[int, ...]:
    """Ordered outline of a mesh region (a polygon of vertex indices).

    Args:
        name: one of :data:`REGIONS`.
        which: "outer" or "inner" lip outline for "LIPS"; other regions have one outline (the
            eyes' is the lid margin; the brows' is the longer of their two edges).

    Example:
        >>> len(region_loop("FACE_OVAL"))
        36
    """
    if name not in REGIONS:
        raise ValueError(f"unknown region {name!r}; choose one of {REGIONS}")
    loops = [loop for loop in _loops(_connections(name)) if len(loop) > 2]
    if name == "LIPS":  # two closed outlines of 20 vertices: the outer one passes vertex 0, the inner one 13
        key = 13 if which == "inner" else 0
        return tuple(next(loop for loop in loops if key in loop))
    loops.sort(key=len, reverse=True)
    return tuple(loops[0])


@functools.lru_cache(maxsize=1)
def eye_triangles() -> np.ndarray:
    """Fans from each iris centre (478-point mesh: 468 right, 473 left) to its lid margin, (32, 3).

    They close the mesh's eye holes so an eye's interior can be texture-mapped too.
    """
    tris = []
    for loop_name, centre in (("RIGHT_EYE", 468), ("LEFT_EYE", 473)):
        loop = region_loop(loop_name)
        for a, b in zip(loop, loop[1:] + loop[:1]):
            tris.append((centre, a, b))
    return np.array(tris, dtype=np.int32)
