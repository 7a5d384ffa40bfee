"""The ``saswap`` command line.

Every command exits 0 on success and 2 on bad input or usage, printing one line that names the file
and the problem; outputs are written to a temporary file and renamed, so a failure leaves nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from saswap import __version__
from saswap.errors import SaSwapError

__all__ = ["main", "build_parser"]

logger = logging.getLogger("saswap")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"saswap: error: {message}\n")


def _ensure_folder(path: Path) -> None:
    """Create the output's folder (like ``mkdir -p``), or fail with a one-line reason."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SaSwapError(f"{path}: cannot create the output folder {path.parent} ({err.strerror})") from None


def _cmd_analyze(args: argparse.Namespace) -> int:
    from saswap.face import FaceAnalyzer
    from saswap.face.draw import draw_faces
    from saswap.io import load_image, save_image

    if args.image.startswith("sample:"):
        from saswap.samples import load_sample

        image = load_sample(args.image.split(":", 1)[1])
    else:
        image = load_image(args.image)
    if args.output is not None:
        out = Path(args.output)
        from saswap.io import _FORMATS

        if out.suffix.lower() not in _FORMATS:
            raise SaSwapError(f"{out}: unsupported output format {out.suffix!r}; use .png or .jpg")
        _ensure_folder(out)
    kwargs = {"tiling": args.tiling} if args.backend == "mediapipe" else {}
    with FaceAnalyzer(backend=args.backend, **kwargs) as analyzer:
        faces = analyzer(image)
    if args.output is not None:
        save_image(draw_faces(image, faces), args.output)
    if args.json:
        payload = {"image": str(args.image), "width": image.shape[1], "height": image.shape[0], "faces": [f.to_dict() for f in faces]}
        print(json.dumps(payload))
    else:
        print(f"{args.image}: {len(faces)} face(s)")
        for i, f in enumerate(faces):
            x1, y1, x2, y2 = f.box
            yaw, pitch, roll = f.pose
            print(f"  #{i}: box=({x1:.0f},{y1:.0f},{x2:.0f},{y2:.0f}) score={f.score:.2f} yaw={yaw:+.1f} pitch={pitch:+.1f} roll={roll:+.1f}")
        if args.output is not None:
            print(f"annotated image written to {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="saswap", description="One-shot, shape-aware face swapping with 3D face priors.")
    parser.add_argument("--version", action="version", version=f"saswap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and timings")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("analyze", help="find faces, landmarks and head pose in an image")
    p.add_argument("image", help="image file (png, jpg, webp, ...), or sample:NAME for a photo shipped in a dependency (sample:t1)")
    p.add_argument("--output", "-o", help="write an annotated copy of the image here")
    p.add_argument("--json", action="store_true", help="print one JSON object with a 'faces' list")
    p.add_argument("--backend", default="mediapipe", choices=("mediapipe", "insightface"))
    p.add_argument("--tiling", default="auto", choices=("auto", "always", "never"), help="small-face search (mediapipe)")
    p.set_defaults(func=_cmd_analyze)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except SaSwapError as err:
        print(f"saswap: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("saswap: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
