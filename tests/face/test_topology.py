"""The face mesh's topology, read from mediapipe's constants module without importing mediapipe."""

from __future__ import annotations

import subprocess
import sys

from saswap.face.topology import mesh_connections


def test_mesh_connections_are_mediapipes_own_sets():
    from mediapipe.python.solutions import face_mesh_connections as mp_sets

    ours = mesh_connections()
    for name in ("TESSELATION", "FACE_OVAL", "LIPS", "LEFT_EYE", "RIGHT_EYEBROW", "LEFT_IRIS"):
        assert getattr(ours, f"FACEMESH_{name}") == getattr(mp_sets, f"FACEMESH_{name}")
    assert ours is mesh_connections()  # read once


def test_importing_the_engine_and_compose_stage_imports_no_mediapipe():
    # a swap from a template cache, and each frame worker process, import these; mediapipe's solutions package
    # would bring matplotlib and every solution with it (about a third of a second of each start)
    code = (
        "import sys, saswap.engines.geometric, saswap.compose.compositor, saswap.pipelines.video;"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(('mediapipe', 'matplotlib'))}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
