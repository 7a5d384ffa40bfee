"""The notebooks' code cells run top to bottom (without a Jupyter kernel) and produce what they show."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path):
    cells = json.loads(path.read_text())["cells"]
    code = [("".join(c["source"])) for c in cells if c["cell_type"] == "code"]
    assert code, f"{path.name} has no code"
    namespace: dict = {}
    last = None
    for source in code:
        tree = ast.parse(source)
        tail = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, path.name, "exec"), namespace)
        if tail is not None:  # a cell's displayed value
            last = eval(compile(ast.Expression(tail.value), path.name, "eval"), namespace)
    from PIL import Image

    assert isinstance(last, Image.Image) or last is None
    if "faces" in namespace:
        assert len(namespace["faces"]) == 6
    if "out" in namespace:
        assert namespace["out"].image.shape == namespace["target"].shape
    if "result" in namespace:  # the video notebook: the swap read the cache built before it, and kept every frame
        from saswap.videoio import probe_video

        result, template = namespace["result"], namespace["template"]
        assert result.cache_hit and not namespace["existed"]
        assert result.frames == result.frames_swapped == probe_video(template).frame_count
