"""The ``saswap`` command line.

Every command exits 0 on success and 2 on bad input or usage, printing one line that names the file
and the problem; outputs are written to a temporary file and renamed, so a failure leaves nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from saswap import __version__
from saswap.errors import InvalidImageError, InvalidVideoError, SaSwapError

__all__ = ["main", "build_parser"]

logger = logging.getLogger("saswap")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"saswap: error: {message}\n")


class _Repeatable(argparse.Action):
    """An option that may be given more than once: its value once given, a list of its values when repeated
    (``saswap swap``'s ``--source``, ``--face-index`` and ``--reference``: one source per person)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        seen = getattr(namespace, self.dest, None)
        if seen is None or seen is self.default:
            setattr(namespace, self.dest, values)
        elif isinstance(seen, list):
            seen.append(values)
        else:
            setattr(namespace, self.dest, [seen, values])


def _each(value) -> list:
    """A repeatable option's values as a list (none, one or several)."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _pairing_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with how ``saswap swap``'s sources pair with ``--face-index`` or ``--reference`` (None: nothing):
    several ``--source`` need one of them given as many times, in the same order."""
    sources, indices, references = _each(args.source), _each(args.face_index), _each(args.reference)
    n = len(sources)
    if n == 1 and len(indices) <= 1 and len(references) <= 1:
        return None
    each = f"give --face-index or --reference {n} times, once per --source, in the same order"
    if n == 1:
        given = "--face-index" if len(indices) > 1 else "--reference"
        return f"{given} is given {max(len(indices), len(references))} times for one --source; give one --source each"
    if args.all_faces:
        return f"--all-faces swaps one source into every face; for {n} --source photos {each}"
    if not indices and not references:
        return f"{n} --source photos but no face chosen for each; {each}"
    given, count = ("--face-index", len(indices)) if indices else ("--reference", len(references))
    if count != n:
        return f"{n} --source photos but {given} given {count} time{'s' if count != 1 else ''}; {each}"
    twice = next((i for k, i in enumerate(indices) if i in indices[:k]), None)
    if twice is not None:
        return f"--face-index {twice} is given twice; each --source replaces a face of its own"
    return None


@contextlib.contextmanager
def _output_folder(path: Path | None) -> Iterator[None]:
    """Create the output's folder (like ``mkdir -p``) for the command, or fail with a one-line reason.

    The folders it created are removed again (when still empty) if the command then fails, so a failed
    command leaves nothing behind.
    """
    if path is None:
        yield
        return
    created = []
    folder = path.parent.absolute()
    while not folder.exists() and folder.parent != folder:
        created.append(folder)  # deepest first
        folder = folder.parent
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SaSwapError(f"{path}: cannot create the output folder {path.parent} ({err.strerror})") from None
    try:
        yield
    except BaseException:
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _cmd_analyze(args: argparse.Namespace) -> int:
    from saswap.face import FaceAnalyzer
    from saswap.face.draw import draw_faces
    from saswap.io import save_image

    image = _load_input(args.image, photo_only="saswap analyze takes a photo (saswap precompute lists a video's faces)")
    _refuse_overwriting_an_input(args, roles=("image",))  # the annotated copy would replace the photo
    out = None
    if args.output is not None:
        out = Path(args.output)
        from saswap.io import _FORMATS

        if out.suffix.lower() not in _FORMATS:
            raise SaSwapError(f"{out}: unsupported output format {out.suffix!r}; use one of {', '.join(_FORMATS)}")
    kwargs = {"tiling": args.tiling} if args.backend == "mediapipe" else {}
    with _output_folder(out):
        with FaceAnalyzer(backend=args.backend, **kwargs) as analyzer:
            faces = analyzer(image, turn="auto")  # numbered as a swap numbers them
        if out is not None:
            save_image(draw_faces(image, faces), out)
    if args.json:
        payload = {
            "image": str(args.image),
            "width": image.shape[1],
            "height": image.shape[0],
            "faces": [f.to_dict() for f in faces],
        }
        print(json.dumps(payload))
    else:
        print(f"{args.image}: {len(faces)} face(s)")
        for i, f in enumerate(faces):
            x1, y1, x2, y2 = f.box
            yaw, pitch, roll = f.pose
            print(
                f"  #{i}: box=({x1:.0f},{y1:.0f},{x2:.0f},{y2:.0f}) score={f.score:.2f} yaw={yaw:+.1f} pitch={pitch:+.1f} roll={roll:+.1f}"
            )
        if args.output is not None:
            print(f"annotated image written to {args.output}")
    return 0


def _load_input(arg: str, video_ok: bool = False, photo_only: str = ""):
    """Load (check) an input photo; with ``video_ok`` a video is checked as a video (a source's best frame is taken).
    A video where only a photo will do is reported as a video, followed by ``photo_only`` (what to give instead)."""
    from saswap.io import load_image
    from saswap.pipelines.image import _is_video_path

    if arg.startswith("sample:"):
        from saswap.samples import load_sample

        return load_sample(arg.split(":", 1)[1])
    if video_ok and _is_video_path(arg):
        from saswap.videoio import probe_video

        return probe_video(arg)
    try:
        return load_image(arg)
    except InvalidImageError:
        if photo_only and _is_video_path(arg):
            raise InvalidImageError(f"{arg}: is a video; {photo_only}") from None
        raise


def _check_enhancer(args: argparse.Namespace) -> None:
    """Find ``--enhance``'s weights before any work (an unknown name, a missing file or download is reported now, not
    when the first face is made: after a video's whole template analysis)."""
    if args.enhance:
        from saswap.enhance import _resolve

        _resolve(args.enhance)


#: What ``--reference`` takes instead of a video.
_REFERENCE_PHOTO_ONLY = "--reference takes a photo of the person to swap (a frame of the video saved as an image)"


def _pipeline_input(arg: str):
    """A ``sample:NAME`` photo as its image; a path as itself (the pipeline decodes it once and names the
    file in its errors: unreadable, no face, a face index out of range)."""
    return _load_input(arg) if arg.startswith("sample:") else arg


def _check_output(path: str) -> Path:
    out = Path(path)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise SaSwapError(f"{out}: unsupported output format {out.suffix!r}; use .png, .jpg or .webp")
    if out.exists() and out.is_dir():
        raise SaSwapError(f"{out}: is a folder; give a file name")
    return out


def _check_writable(out: Path) -> None:
    """Fail now, not after the work, when the output's folder cannot be written."""
    folder = out.parent if str(out.parent) else Path(".")
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise SaSwapError(f"{out}: cannot write to {folder} (permission denied)")


_VIDEO_OUTPUTS = (".mp4", ".mov", ".mkv", ".webm", ".gif")


def _is_video(arg: str) -> bool:
    if arg.startswith("sample:"):
        return False
    from saswap.videoio import is_video_file

    path = Path(arg)
    try:
        return path.is_file() and is_video_file(path)
    except OSError:  # a name too long, an unreadable file: reading it as an image says what is wrong
        return False


def _cmd_swap_video(args: argparse.Namespace) -> int:
    from saswap.pipelines.image import SaSwapPipeline
    from saswap.videoio import probe_video

    out = Path(args.output)
    if out.suffix.lower() not in _VIDEO_OUTPUTS:
        what = f"{out.suffix!r} is not a video output SaSwap writes" if out.suffix else "the output has no extension"
        raise SaSwapError(f"{out}: the target is a video, and {what}; use one of {', '.join(_VIDEO_OUTPUTS)}")
    if out.exists() and out.is_dir():
        raise SaSwapError(f"{out}: is a folder; give a file name")
    probe_video(args.target)  # bad input is reported before any model loads
    if out.suffix.lower() == ".gif":
        _warn_ignored(args, ("crf", "preset", "codec"), f"{out}: a GIF has no encoder settings")
    if (args.start is not None and args.start < 0) or (
        args.start is not None and args.end is not None and args.end <= args.start
    ):
        raise SaSwapError(f"--start/--end: need 0 <= start < end, got {args.start} and {args.end}")
    for source in _each(args.source):
        _load_input(source, video_ok=True)
    for reference in _each(args.reference):
        _load_input(reference, photo_only=_REFERENCE_PHOTO_ONLY)
    _check_enhancer(args)
    with _output_folder(out):
        _check_writable(out)
        pipe = SaSwapPipeline.from_pretrained(args.weights or args.engine, compose=_compose_options(args))
        if args.device:
            pipe.to(args.device)
        prepared, reference = _prepared_sources(pipe, args)
        result = pipe.swap_video(
            prepared, args.target, out, shape_strength=args.shape_strength, face_index=args.face_index,
            all_faces=args.all_faces, reference=reference, enhance=args.enhance, cache=not args.no_cache,
            cache_dir=args.cache_dir, start=args.start, end=args.end, codec=args.codec, progress=not args.quiet,
            workers=args.workers, **{k: getattr(args, k) for k in ("crf", "preset") if getattr(args, k) is not None},
            processes={"auto": None, "threads": False, "processes": True}[args.worker_kind],
            analysis_workers=args.analysis_workers, skin_sigma=args.steady_skin, crop_size=args.crop_size,
        )  # fmt: skip
    t = result.timings
    hit = "template cache hit" if result.cache_hit else f"template analysed in {t['precompute']:.1f} s"
    repeats = f"; {result.frames_repeated} repeated frames" if result.frames_repeated else ""
    shots = f" ({result.shots_swapped} of {result.shots} shots)" if result.shots > 1 else ""
    print(
        f"{out}: {result.frames} frames, face swapped in {result.frames_swapped}{shots}, {t['total']:.1f} s "
        f"({result.fps:.1f} frames/s; {hit}{repeats})"
    )
    if args.verbose:
        print("  " + ", ".join(f"{k} {v:.2f} s" for k, v in t.items()))
    return 0


#: ``saswap swap``'s options that only a video target uses, each with its value when not given. A still target
#: names those given (and ignored) in a warning.
_VIDEO_OPTIONS: dict[str, object] = {
    "crf": None, "preset": None, "codec": None, "start": None, "end": None, "no_cache": False, "cache_dir": None,
    "workers": None, "worker_kind": "auto", "analysis_workers": None, "steady_skin": 0.0,
}  # fmt: skip


def _warn_ignored(args: argparse.Namespace, names: Sequence[str], why: str) -> None:
    """Warn that the options among ``names`` given on the command line are ignored, and ``why``."""
    given = [f"--{name.replace('_', '-')}" for name in names if getattr(args, name) != _VIDEO_OPTIONS[name]]
    if given:
        logger.warning("%s; %s ignored", why, ", ".join(given))


def _compose_options(args: argparse.Namespace) -> dict[str, float | str] | None:
    """The compose stage's options a swap's command line sets (None: the model's own)."""
    from saswap.pipelines.image import compose_options

    # precompute has neither --tone-lock nor --harmonize (neither changes a template cache)
    given = {k: getattr(args, k) for k in ("tone_lock", "occlusion", "harmonize") if hasattr(args, k)}
    return compose_options(**given)


def _cmd_precompute(args: argparse.Namespace) -> int:
    from saswap.pipelines.image import SaSwapPipeline
    from saswap.videoio import probe_video

    info = probe_video(args.template)
    pipe = SaSwapPipeline.from_pretrained(args.weights or args.engine, compose=_compose_options(args))
    opened, existed = pipe.precompute(
        args.template, args.cache_dir, progress=not args.quiet, force=args.force, workers=args.workers,
        crop_size=args.crop_size,
    )  # fmt: skip
    size = opened.path.stat().st_size
    minutes = max(info.duration / 60.0, 1e-9)
    state = "already cached" if existed else "cached"
    repeats = opened.header.get("repeats", 0)
    repeated = f", {repeats} repeat the picture before them" if repeats else ""
    print(
        f"{args.template}: {state} in {opened.path} ({len(opened)} frames{repeated}, "
        f"{opened.header.get('crop_size', pipe.engine.crop_size)}-px crop, {size / 1e6:.1f} MB, "
        f"{size / 1e6 / minutes:.0f} MB per minute)"
    )
    from saswap.pipelines.video import describe_people

    shots = len(opened.header.get("cuts", [])) + 1
    people = describe_people(opened.header, info.fps)
    if people:
        print(f"people, as --face-index counts them ({shots} shot{'s' if shots != 1 else ''}):")
        print("\n".join(people))
    else:  # as `saswap swap` says of it: a template no swap can use is an error, its (complete) cache kept
        from saswap.errors import NoFaceError

        raise NoFaceError(f"{args.template}: no face found in the video ({len(opened)} frames); nothing to swap in it")
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    from saswap.pipelines.batch import BatchSettings, describe, run_batch

    settings = BatchSettings(
        engine=args.weights or args.engine, shape_strength=args.shape_strength, face_index=args.face_index,
        all_faces=args.all_faces, reference=args.reference, enhance=args.enhance, codec=args.codec, crf=args.crf,
        preset=args.preset, force=args.force, tone_lock=args.tone_lock, crop_size=args.crop_size,
        occlusion=args.occlusion, harmonize=args.harmonize,
    )  # fmt: skip
    report = run_batch(
        args.sources, args.templates, args.output, settings=settings, backend=args.backend, workers=args.workers,
        threads=args.threads, ray_address=args.ray_address, cache_dir=args.cache_dir, dry_run=args.dry_run,
        progress=not args.quiet, echo=lambda line: None,
    )  # fmt: skip
    if args.dry_run:
        for job in report.jobs:
            state = "done already" if report.status[job.key] == "skipped" else "to do"
            print(f"{state:12s} {job.source_name} -> {job.template} => {job.output}")
    for line in describe(report):
        print(line)
    return 0 if report.ok else 1


def _refuse_overwriting_an_input(
    args: argparse.Namespace, roles: Sequence[str] = ("source", "target", "reference")
) -> None:
    """The output may replace an existing file, but not one of the command's own inputs (unless the command has
    --overwrite and it is given; never a video target, which is read while the output is written)."""
    if args.output is None:
        return
    out = Path(args.output)
    try:
        if not out.exists():
            return
    except OSError:  # a name the file system cannot hold: writing it says so
        return
    for role, value in ((role, value) for role in roles for value in _each(getattr(args, role, None))):
        if value and not value.startswith("sample:") and Path(value).exists() and Path(value).resolve() == out.resolve():
            from saswap.videoio import is_video_file

            if role == "target" and is_video_file(out):
                raise SaSwapError(f"{out}: is the target video itself; give another output file")
            if not hasattr(args, "overwrite"):
                raise SaSwapError(f"{out}: is the {role} itself; give another output file")
            if not args.overwrite:
                raise SaSwapError(
                    f"{out}: is the {role} itself; give another output file (or --overwrite to replace it)"
                )


@contextlib.contextmanager
def _streams_spooled(args: argparse.Namespace) -> Iterator[None]:
    """Inputs that are pipes, not files (``<(cat photo.jpg)``, a named pipe), copied once into a temporary folder:
    a pipe can be read only once, and the swap reads its inputs more than once (to check them, then to swap).
    Errors name the argument as given, not the copy."""
    import shutil
    import tempfile

    copies: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for role in ("source", "target", "reference"):
            values = getattr(args, role, None)
            spooled = []
            for value in _each(values):
                if value and not value.startswith("sample:") and _is_fifo(value):
                    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="saswap-input-")))
                    copy = folder / (Path(value).name or "input")
                    with open(value, "rb") as src, open(copy, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    copies[str(copy)] = value
                    value = str(copy)
                spooled.append(value)
            if copies and values is not None:
                setattr(args, role, spooled if isinstance(values, list) else spooled[0])
        try:
            yield
        except SaSwapError as err:
            text = str(err)
            for copy, value in copies.items():
                text = text.replace(copy, value)
            if text == str(err):
                raise
            raise type(err)(text) from None


def _is_fifo(path: str) -> bool:
    """Whether ``path`` is a pipe (False when it is missing or unreadable: loading it says so)."""
    import stat

    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def _cmd_swap(args: argparse.Namespace) -> int:
    with _streams_spooled(args):
        return _cmd_swap_files(args)


def _cmd_swap_files(args: argparse.Namespace) -> int:
    from saswap.pipelines.image import SaSwapPipeline

    if not 0.0 <= args.shape_strength <= 1.0:
        raise SaSwapError(f"--shape-strength must lie in [0, 1], got {args.shape_strength}")
    _refuse_overwriting_an_input(args)
    if _is_video(args.target):
        return _cmd_swap_video(args)
    _warn_ignored(args, tuple(_VIDEO_OPTIONS), f"{args.target}: a still image, and these options are for videos")
    if Path(args.output).suffix.lower() == ".gif":
        raise SaSwapError(
            f"{args.output}: unsupported output format '.gif' for a still target; use .png, .jpg or .webp "
            "(a GIF is written from an animated GIF or a video)"
        )
    if Path(args.output).suffix.lower() in _VIDEO_OUTPUTS:
        from saswap.videoio import probe_video

        probe_video(args.target)  # names what is wrong with the target (a broken or audio-only file)
        raise SaSwapError(f"{args.target}: not a video; a video output needs a video target")
    out = _check_output(args.output)
    for role in ("source", "target", "reference"):  # bad input is reported before any model loads
        for value in _each(getattr(args, role, None)):
            only = _REFERENCE_PHOTO_ONLY if role == "reference" else ""
            _load_input(value, video_ok=role == "source", photo_only=only)
    _check_enhancer(args)
    with _output_folder(out):
        _check_writable(out)
        target = _pipeline_input(args.target)
        t0 = time.perf_counter()
        pipe = SaSwapPipeline.from_pretrained(args.weights or args.engine, compose=_compose_options(args))
        if args.device:
            pipe.to(args.device)
        prepared, reference = _prepared_sources(pipe, args)
        loaded = time.perf_counter() - t0
        result = pipe(
            prepared, target, shape_strength=args.shape_strength, face_index=args.face_index,
            all_faces=args.all_faces, reference=reference, enhance=args.enhance, crop_size=args.crop_size,
        )  # fmt: skip
        result.save(out)
    t = result.timings
    print(f"{out}: swapped {len(result.faces)} face(s) in {t['total'] * 1000:.0f} ms (swap {t['swap'] * 1000:.0f} ms)")
    if args.verbose:
        print(f"  models loaded and source analysed in {loaded * 1000:.0f} ms; " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in t.items()))
    return 0


def _prepared_sources(pipe, args: argparse.Namespace) -> tuple:
    """``saswap swap``'s sources, prepared (one, or a list: one per person), and its reference photo (or list)."""
    prepared = [pipe.prepare_source(_pipeline_input(source), force=args.force)[0] for source in _each(args.source)]
    references = [_pipeline_input(reference) for reference in _each(args.reference)]
    if isinstance(args.source, list):
        return prepared, references or None
    return prepared[0], references[0] if references else None


def _cmd_demo(args: argparse.Namespace) -> int:
    from saswap.pipelines.image import SaSwapPipeline
    from saswap.samples import load_sample

    if not 0.0 <= args.shape_strength <= 1.0:  # before the output folder is made
        raise SaSwapError(f"--shape-strength must lie in [0, 1], got {args.shape_strength}")
    folder = Path(args.output)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SaSwapError(f"{folder}: cannot create the output folder ({err.strerror})") from None
    pipe = SaSwapPipeline.from_pretrained(args.engine)
    # targets of at least 512 px, so a person can judge the result (the 112-px tom_hanks is a source only)
    jobs = [("tom_hanks", "astronaut", {}), ("tom_hanks", "t1", {"all_faces": True})]
    prepared: dict[str, object] = {}  # each source analysed once (and warned about once)
    for src_name, tgt_name, kwargs in jobs:
        try:
            if src_name not in prepared:
                prepared[src_name] = pipe.prepare_source(load_sample(src_name))[0]
            target = load_sample(tgt_name)
        except SaSwapError as err:
            logger.warning("skipping %s -> %s: %s", src_name, tgt_name, err)
            continue
        result = pipe(prepared[src_name], target, shape_strength=args.shape_strength, **kwargs)
        result.provenance["demo"] = True
        path = result.save(folder / f"{src_name}_into_{tgt_name}.png")
        h, w = result.image.shape[:2]
        print(f"{path}: {w}x{h}, {len(result.faces)} face(s), {result.timings['total'] * 1000:.0f} ms")
    if "tom_hanks" in prepared:
        _demo_video(pipe, prepared["tom_hanks"], folder, args)
    return 0


def _demo_video(pipe, source, folder: Path, args: argparse.Namespace) -> None:
    """The video path on a template made from a packaged photo (no video ships in any dependency): a 2-s pan
    across the group photo, swapped with every face tracked; a second swap of it hits the template cache."""
    from saswap.samples import make_sample_video

    template = make_sample_video(folder / "t1_pan.mp4", "t1")
    out = folder / "tom_hanks_into_t1_pan.mp4"
    result = pipe.swap_video(source, template, out, shape_strength=args.shape_strength, all_faces=True, progress=False)
    t = result.timings
    hit = "template cache hit" if result.cache_hit else f"template analysed in {t['precompute']:.1f} s"
    print(f"{template}: the template (a pan across sample:t1, {result.frames} frames)")
    print(f"{out}: face swapped in {result.frames_swapped} of {result.frames} frames, {t['total']:.1f} s ({hit})")


def _run_lightning_cli(module: str, function: str, command: str, lightning_args: list[str]) -> int:
    """Run a LightningCLI entry point (``module.function``) as ``saswap COMMAND ...``."""
    import importlib

    try:
        main_fn = getattr(importlib.import_module(module), function)
    except ImportError as err:
        raise SaSwapError(f"training needs the 'train' extra: pip install 'saswap[train]' ({err})") from None
    # Lightning prints its records through its own handler (on the "lightning" logger): do not pass them on
    # to ours as well, which printed every line twice
    for name, log in list(logging.root.manager.loggerDict.items()):
        if isinstance(log, logging.Logger) and name.split(".")[0] in ("lightning", "pytorch_lightning", "lightning_fabric") and log.handlers:
            log.propagate = False
    # LightningCLI reads its arguments from sys.argv, as if it were the command itself (given both, it warns)
    argv = sys.argv
    sys.argv = [f"saswap {command}", *lightning_args]
    try:
        main_fn(None)
    except Exception as err:
        # jsonargparse reports a constructor's error under an optional class (``contextual_loss:``) as "Does not
        # validate against any of the Union subtypes", the error chained below it: a SaSwapError there is the user's
        # to fix, reported as itself in one line
        cause = _saswap_cause(err)
        if cause is None or cause is err:
            raise
        raise cause from None
    finally:
        sys.argv = argv
    return 0


def _saswap_cause(err: BaseException) -> SaSwapError | None:
    """The first SaSwapError in ``err``'s chain of causes (``raise ... from``), ``err`` itself included."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, SaSwapError):
            return err
        seen.add(id(err))
        err = err.__cause__
    return None


def _cmd_train(args: argparse.Namespace) -> int:
    return _run_lightning_cli("saswap.training.cli", "train_main", "train", args.lightning_args)


def _cmd_train_parser(args: argparse.Namespace) -> int:
    return _run_lightning_cli("saswap.training.parser_cli", "train_parser_main", "train-parser", args.lightning_args)


def _cmd_train_harmonizer(args: argparse.Namespace) -> int:
    return _run_lightning_cli(
        "saswap.training.harmonizer_cli", "train_harmonizer_main", "train-harmonizer", args.lightning_args
    )


#: How a user puts each kind of exported model to use (``saswap export``'s last line).
_EXPORTED_USE = {
    "saswap": "saswap swap --weights {out} ...",
    "parser": "saswap swap --occlusion {out} ... (the target's cover and the source's cleaning)",
    "harmonizer": "saswap swap --harmonize {out} ...",
}


def _cmd_export(args: argparse.Namespace) -> int:
    try:
        from saswap.training.checkpoints import CHECKPOINT_KINDS
        from saswap.training.export import export_checkpoint
    except ImportError as err:
        raise SaSwapError(f"export needs the 'train' extra: pip install 'saswap[train]' ({err})") from None
    kind, out = export_checkpoint(
        args.checkpoint, args.output, onnx=not args.no_onnx, covered_threshold=args.covered_threshold
    )
    print(f"{out}: exported {CHECKPOINT_KINDS[kind][2]} ({', '.join(sorted(p.name for p in out.iterdir()))})")
    print(f"use it with: {_EXPORTED_USE[kind].format(out=shlex.quote(str(out)))}")
    return 0


def _media_container(path: str) -> bool:
    """Whether a file starts as an MP4/MOV, Matroska/WebM or AVI container does (whatever it holds)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    return head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3" or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")


def _cmd_inspect(args: argparse.Namespace) -> int:
    try:
        tag = _read_any_tag(args)
    except SaSwapError as err:
        if args.json:  # a script reading the JSON gets the error there too (and the exit code 2)
            print(json.dumps({"file": str(args.file), "error": str(err)}))
        raise
    if args.json:
        print(json.dumps({"file": str(args.file), "saswap": tag}))
    elif tag is None:
        print(f"{args.file}: no saswap provenance tag (not made by saswap, or the tag was stripped)")
    else:
        extra = ", ".join(f"{k}={v}" for k, v in sorted(tag.items()) if k not in ("synthetic", "generator", "note"))
        print(f"{args.file}: SYNTHETIC - made with saswap ({extra})")
    return 0 if tag is not None else 1  # scripts can test files: 0 tagged, 1 not tagged, 2 unreadable


def _read_any_tag(args: argparse.Namespace) -> dict | None:
    """The synthetic-media tag of an image or video file (None: no tag)."""
    from saswap.provenance import read_tag

    if _is_video(args.file):
        from saswap.videoio import read_video_tag

        tag = read_video_tag(args.file)
    else:
        try:
            tag = read_tag(args.file)
        except InvalidImageError as err:
            if not _media_container(args.file):
                raise
            # a media container that is no readable video (a truncated MP4, an audio-only file): say what is wrong
            from saswap.videoio import probe_video

            try:
                probe_video(args.file)
            except InvalidVideoError as video_err:
                if "not a video file" in str(video_err):  # an image format PIL cannot read (HEIC, AVIF)
                    raise err from None
                raise video_err from None
            raise err from None
    return tag


def _zoo_state(entry) -> str:
    """Whether a zoo name can be used today, and how."""
    if entry.engine == "geometric":
        return "ready (needs no weights)"
    if entry.engine == "parser" and entry.published:
        return "ready (inside the package)"
    if entry.published:
        return "ready (downloaded on first use)"
    return f"not published: train it with {entry.recipe}" if entry.recipe else "not published"


def _cmd_models(args: argparse.Namespace) -> int:
    from saswap.zoo import ZOO

    kinds = {"parser": "face parser", "harmonizer": "tone harmoniser"}
    flags = {"parser": "--occlusion", "harmonizer": "--harmonize"}  # the options that take a component
    rows = [(e, kinds.get(e.engine, "swap engine"), _zoo_state(e)) for e in sorted(ZOO.values(), key=lambda e: e.name)]
    if args.json:
        print(json.dumps([{**e.to_dict(), "kind": kind, "state": state} for e, kind, state in rows], indent=2))
        return 0
    for entry, kind, state in rows:
        print(f"{entry.name}  [{kind}; {flags.get(entry.engine, '--engine')} {entry.name}]  {state}")
        print(f"    {entry.description}")
        print(f"    licence: {entry.licence}")
    print("--engine/--weights also take a model folder ('saswap export') or a Hugging Face Hub id (owner/name); "
          "--occlusion and --harmonize a folder")
    return 0


def _cmd_app(args: argparse.Namespace) -> int:
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        raise SaSwapError("the web app needs gradio: pip install 'saswap[app]'")
    from saswap.app import AppSettings, launch

    settings = AppSettings(
        templates=Path(args.templates) if args.templates else None,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        engines=tuple(args.engine or ["saswap-geometric"]),
        enhance=args.enhance,
        max_video_seconds=args.max_video_seconds,
        max_upload_mb=args.max_upload_mb,
        max_image_mp=args.max_image_mp,
        tone_lock=args.tone_lock,
        crop_size=args.crop_size,
        occlusion=args.occlusion,
        harmonize=args.harmonize,
    )
    launch(settings, host=args.host, port=args.port)
    return 0


def _user_path(text: str) -> str:
    """An argparse type for a file or folder argument: a leading ``~`` is the user's home folder, as in
    ``$SASWAP_CACHE``, where the shell leaves it as it is (``--cache-dir=~/cache``, a quoted path)."""
    return os.path.expanduser(text)


def _whole_number(low: int, high: int | None = None, note: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` (to ``high``; ``note`` adds to the message); argparse reports
    anything else as a usage error naming the option, exit code 2."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"must be {span}{note}, got {value}")
        return value

    return parse


#: ``--crf``: 0 to 63 (the encoders' own ranges: x264 and x265 0-51, VP9 and AV1 0-63; the encoder checks its own when
#: the output is opened, before any work).
_crf = _whole_number(0, 63, " (x264: 0 lossless, 51 worst)")
#: ``--workers``, ``--analysis-workers``: 0 (none) or more.
_workers = _whole_number(0)


def _crop_size(text: str) -> str | int:
    """``--crop-size``: ``auto`` or a whole number of pixels, 256 to 2048
    (:func:`~saswap.pipelines.image.check_crop_size`; argparse reports anything else as a usage error naming the
    option, exit code 2)."""
    from saswap.pipelines.image import check_crop_size

    try:
        return check_crop_size(text)
    except SaSwapError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _number_between(low: float, high: float, what: str) -> Callable[[str], float]:
    """An argparse type: a number in [``low``, ``high``] (``what`` names the range in the message; argparse reports
    anything else as a usage error naming the option, exit code 2)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:  # nan too
            raise argparse.ArgumentTypeError(f"must lie between {what}, got {text}")
        return value

    return parse


def _add_swap_settings(p: argparse.ArgumentParser, people: bool | str = False) -> None:
    """The options that say how a swap is made (``swap`` and ``batch``): engine, shape, which faces, enhancement,
    tone. ``people``: ``--face-index`` and ``--reference`` may be repeated, one per ``--source`` (``swap``), or, with
    ``"batch"``, once per person of a couple's source folder."""
    p.add_argument("--engine", default="saswap-geometric", help="zoo name of the engine (default: saswap-geometric)")
    p.add_argument("--weights", type=_user_path, help="local model folder (overrides --engine)")
    p.add_argument(
        "--shape-strength", type=float, default=1.0, help="0 keeps the target's face shape, 1 takes the source's"
    )
    group = p.add_mutually_exclusive_group()
    repeat = {"action": _Repeatable} if people else {}
    once_each = "; with several --source, give it once per --source, in the same order" if people else ""
    if people == "batch":
        once_each = ("; repeated, once per person: each source is then a folder of one photo per person (name order), "
                     "or a folder of such folders")  # fmt: skip
    group.add_argument(
        "--face-index",
        type=_whole_number(0, note=" (0 is the largest face)"), **repeat,
        help="swap only the target face with this index (largest first; in a video: the person, by summed face "
        f"area){once_each}",
    )  # fmt: skip
    group.add_argument("--all-faces", action="store_true", help="swap every face in the target")
    group.add_argument(
        "--reference", type=_user_path, **repeat,
        help=f"swap the target face most like the face in this photo{once_each}",
    )  # fmt: skip
    p.add_argument(
        "--enhance", type=_user_path, help="face enhancer: an ONNX file/folder or a known name (off by default)"
    )
    p.add_argument(
        "--tone-lock", type=_number_between(0.0, 1.0, "0 and 1"), default=0.0, metavar="0..1",
        help="how far the face's middle takes the target's median skin tone (0 off, the default; 1 all the way: "
        "skin tone nearer the target's, the source's identity a little weaker; see the README)",
    )
    p.add_argument(
        "--crop-size", type=_crop_size, default=None, metavar="auto|PIXELS",
        help="side of the aligned crop the face is swapped in (default: the engine's own, 384 px); auto sizes it to "
        "the face, 256 to 1024 px: a high-resolution photo or video keeps the detail of its eyes, brows and lips "
        "(slower), a small face is swapped at its own resolution in less time (a video: its faces' median size); a "
        "number from 256 to 2048 sets it. A video's template cache is made for that crop",
    )  # fmt: skip
    _add_occlusion(p)
    _add_harmonize(p)
    p.add_argument(
        "--force", action="store_true",
        help="use a source face turned more than 45 degrees from the camera (the swap breaks; warned from 25)",
    )  # fmt: skip


def _add_occlusion(p: argparse.ArgumentParser, cache: str = "A video's template cache is made for it") -> None:
    p.add_argument(
        "--occlusion", type=_user_path, metavar="parser|rules|off|FOLDER",
        help="what tells the cover over a target's face (hands, masks, hair) that a swap keeps: the shipped face "
        "parser (the default), the older colour and texture rules, off, or a face parser you trained ('saswap "
        f"train-parser' and 'saswap export'), which then cleans the source's face too. {cache}",
    )  # fmt: skip


def _add_harmonize(p: argparse.ArgumentParser, what: str = "a tone harmoniser you trained") -> None:
    p.add_argument(
        "--harmonize", type=_user_path, metavar="off|FOLDER",
        help=f"{what} ('saswap train-harmonizer' and 'saswap export'; default: off, none ships)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="saswap", description="One-shot, shape-aware face swapping with 3D face priors.")
    parser.add_argument("--version", action="version", version=f"saswap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and timings")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    # -v also after the subcommand (``saswap swap ... -v``); SUPPRESS keeps a -v given before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log progress and timings")

    p = sub.add_parser("analyze", parents=[common], help="find faces, landmarks and head pose in an image")
    p.add_argument(
        "image", type=_user_path,
        help="image file (png, jpg, webp, ...), or sample:NAME for a photo shipped in a dependency (sample:t1)",
    )
    p.add_argument("--output", "-o", type=_user_path, help="write an annotated copy of the image here")
    p.add_argument("--json", action="store_true", help="print one JSON object with a 'faces' list")
    p.add_argument("--backend", default="mediapipe", choices=("mediapipe", "insightface"))
    p.add_argument(
        "--tiling", default="auto", choices=("auto", "always", "never"), help="small-face search (mediapipe)"
    )
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser("swap", parents=[common], help="put the source's face into a target image or video")
    p.add_argument(
        "--source", "-s", required=True, type=_user_path, action=_Repeatable,
        help="photo of the person whose face is used (or sample:NAME; a video: its most frontal frame). Repeat it for "
        "several people, each with --face-index or --reference given once per --source, in the same order: -s a.jpg "
        "-s b.jpg --reference person_a.jpg --reference person_b.jpg",
    )  # fmt: skip
    p.add_argument(
        "--target", "-t", required=True, type=_user_path,
        help="image or video (animated GIF too) whose face is replaced, or sample:NAME",
    )
    p.add_argument(
        "--output", "-o", required=True, type=_user_path,
        help="output image (.png, .jpg, .webp) or video (.mp4, .mov, .mkv, .webm, .gif); tagged as synthetic. An "
        "existing file is replaced (atomically), except one of the command's own inputs",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="allow the output to replace an input file")
    _add_swap_settings(p, people=True)
    p.add_argument(
        "--device", default=None,
        help="where the engine computes (cuda, cuda:1; mps for the neural engine; default: the CPU); face analysis "
        "and the compose stage stay on the CPU",
    )  # fmt: skip
    v = p.add_argument_group("video targets (chosen by content: any file PyAV reads as a video)")
    v.add_argument(
        "--crf", type=_crf, default=None,
        help="encoder quality (x264/x265: 0 lossless, 14 default, 51 worst; VP9 up to 63)",
    )  # fmt: skip
    v.add_argument("--preset", default=None, help="encoder speed preset (x264/x265; default veryfast)")
    v.add_argument("--codec", default=None, help="video encoder (default libx264: H.264; libvpx-vp9 for .webm)")
    v.add_argument(
        "--start", type=float,
        help="start of the span to swap, seconds (only the span is analysed, unless the whole template is cached)",
    )  # fmt: skip
    v.add_argument("--end", type=float, help="end of the span to swap, seconds")
    v.add_argument("--no-cache", action="store_true", help="do not use or write the template cache")
    v.add_argument(
        "--cache-dir", type=_user_path, help="template cache folder (default: $SASWAP_CACHE or the user cache folder)"
    )
    v.add_argument("--workers", type=_workers, default=None, help="frame workers beside decoding and encoding (default: 2 on up to 2 cores, else one per core but one, at most 8; threads: at most 8; 0: frames made on the main thread; results do not change)")
    v.add_argument("--worker-kind", choices=("auto", "threads", "processes"), default="auto", help="threads, or processes (each with a copy of the engine, for many cores; with the engine on a GPU, the compose stage alone); auto: processes for more than 2 workers, and for 2 on videos of 300 frames or more")
    v.add_argument("--analysis-workers", type=_workers, default=None, help="processes that analyse a template not yet cached (default, for videos of 300 frames or more: 2 on 2 cores, else one per core but one, at most 8, none on one core; 0: none; the same analysis, up to rounding)")
    v.add_argument(
        "--steady-skin", type=_number_between(0.0, 10.0, "0 (off) and 10 frames"), nargs="?", const=1.0, default=0.0,
        metavar="FRAMES",
        help="also smooth the new face's skin over time, a Gaussian of FRAMES (1 when given alone; off by default): "
        "less skin-tone flicker on steadily lit faces, a slower swap (see the README)",
    )
    v.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_swap)

    p = sub.add_parser("precompute", parents=[common], help="analyse a template video once into its template cache")
    p.add_argument("template", type=_user_path, help="the template video")
    p.add_argument(
        "--cache-dir", type=_user_path, help="cache folder (default: $SASWAP_CACHE or the user cache folder)"
    )
    p.add_argument("--engine", default="saswap-geometric", help="the engine the cache is for (its alignment)")
    p.add_argument("--weights", type=_user_path, help="local model folder (overrides --engine)")
    p.add_argument("--force", action="store_true", help="rebuild even when a valid cache exists")
    _add_occlusion(p)
    p.add_argument(
        "--crop-size", type=_crop_size, default=None, metavar="auto|PIXELS",
        help="the crop the cache is made for, as `saswap swap --crop-size` takes it (default: the engine's own)",
    )  # fmt: skip
    p.add_argument("--workers", type=_workers, default=None, help="processes that detect and describe the faces (default, for videos of 300 frames or more: 2 on 2 cores, else one per core but one, at most 8, none on one core; 0: none; the same analysis, up to rounding)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_precompute)

    p = sub.add_parser(
        "batch", parents=[common],
        help="swap every source photo into every template (images and videos), resumable, on one machine or Ray",
        description="Swap every source photo into every template. Outputs go to OUTPUT/<source>/<template>.<ext> with "
        "a manifest (OUTPUT/manifest.jsonl); running the same command again skips finished jobs and reruns failed "
        "or interrupted ones. Exit code 0 when every job succeeded, 1 when some failed, 2 on bad arguments.",
    )  # fmt: skip
    p.add_argument(
        "--sources", nargs="+", type=_user_path, required=True,
        help="source photos: folders, list files (.txt) or files",
    )
    p.add_argument(
        "--templates", nargs="+", type=_user_path, required=True,
        help="template videos and images: folders, list files or files",
    )
    p.add_argument("--output", "-o", required=True, type=_user_path, help="output folder")
    p.add_argument("--backend", default="ray", choices=("ray", "local"), help="ray (default; needs saswap[batch]) or local (this process)")
    p.add_argument("--workers", type=int, help="Ray workers, each with its own model copy (default: one per CPU)")
    p.add_argument("--threads", type=int, help="threads per worker (default: CPUs / workers on a local instance, else 1)")
    p.add_argument("--ray-address", help="join this Ray cluster (auto, HOST:6379 or ray://HOST:10001) instead of starting one")
    p.add_argument(
        "--cache-dir", type=_user_path,
        help="template cache folder, one every node reaches (default: $SASWAP_CACHE or the user cache folder)",
    )
    _add_swap_settings(p, people="batch")
    p.add_argument(
        "--crf", type=_crf, default=14, help="video encoder quality (x264: 0 lossless, 14 default, 51 worst)"
    )
    p.add_argument("--preset", default="veryfast", help="video encoder speed preset (default veryfast)")
    p.add_argument("--codec", default=None, help="video encoder (default libx264; libvpx-vp9 for .webm)")
    p.add_argument("--dry-run", action="store_true", help="list the jobs (to do, or done already) and stop")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_batch)

    p = sub.add_parser(
        "demo", parents=[common], help="swap faces in photos shipped in installed packages and in a short video made from one"
    )
    p.add_argument(
        "--output", "-o", default="saswap-demo", type=_user_path, help="folder for the results (default: saswap-demo)"
    )
    p.add_argument("--engine", default="saswap-geometric")
    p.add_argument("--shape-strength", type=float, default=1.0)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("train", help="train the neural model (LightningCLI: fit; needs saswap[train])", add_help=False)
    p.add_argument(
        "lightning_args",
        nargs=argparse.REMAINDER,
        help="arguments for LightningCLI, e.g. fit --config recipes/debug-tiny.yaml",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "train-parser", add_help=False,
        help="train the face parser with occlusion (LightningCLI: fit, validate; needs saswap[train])",
    )  # fmt: skip
    p.add_argument(
        "lightning_args", nargs=argparse.REMAINDER, help="arguments for LightningCLI, e.g. fit --config recipes/face-parser.yaml"
    )
    p.set_defaults(func=_cmd_train_parser)

    p = sub.add_parser(
        "train-harmonizer", add_help=False,
        help="train the tone and light harmoniser (LightningCLI: fit, validate; needs saswap[train])",
    )  # fmt: skip
    p.add_argument(
        "lightning_args",
        nargs=argparse.REMAINDER,
        help="arguments for LightningCLI, e.g. fit --config recipes/tone-harmonizer.yaml",
    )
    p.set_defaults(func=_cmd_train_harmonizer)

    p = sub.add_parser(
        "export", parents=[common],
        help="export a training checkpoint (swap model, face parser or tone harmoniser) as a model folder (+ ONNX)",
    )  # fmt: skip
    p.add_argument(
        "checkpoint", type=_user_path, help="a .ckpt written by 'saswap train', 'train-parser' or 'train-harmonizer'"
    )
    p.add_argument("output", type=_user_path, help="new (or empty) folder for the exported model")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX copy (the swap model's and the parser's)")
    p.add_argument(
        "--covered-threshold", type=_number_between(0.0, 1.0, "0 and 1"), metavar="0..1",
        help="a face parser's operating point to record: the probability of cover above which a pixel counts as "
        "covered (default: the checkpoint's, 0.5 unless set; choose it with saswap.eval.parsing.calibrate_threshold)",
    )  # fmt: skip
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "inspect",
        parents=[common],
        help="report whether an image or video carries saswap's synthetic-content tag (exit 0: tagged, 1: not, 2: unreadable)",
    )
    p.add_argument("file", type=_user_path, help="an image or video file")
    p.add_argument(
        "--json", action="store_true",
        help='print {"file": ..., "saswap": TAG or null} (an unreadable file: {"file": ..., "error": ...}, exit 2)',
    )  # fmt: skip
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("models", parents=[common], help="list the model zoo's names: what each is, whether it is ready")
    p.add_argument("--json", action="store_true", help="print the entries as JSON")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("app", parents=[common], help="start the web app (upload, choose, swap, watch, download; needs saswap[app])")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=7860, help="TCP port (default 7860)")
    p.add_argument(
        "--templates", type=_user_path, help="folder of template videos; those with a precomputed cache are offered"
    )
    p.add_argument(
        "--cache-dir", type=_user_path, help="template cache folder (default: $SASWAP_CACHE or the user cache folder)"
    )
    p.add_argument(
        "--engine", action="append",
        help="engine offered in the page (zoo name or model folder; repeat for several; default saswap-geometric)",
    )  # fmt: skip
    p.add_argument(
        "--enhance", type=_user_path, help="face enhancer for the page's 'enhance' switch (a local ONNX file or folder)"
    )
    p.add_argument("--max-video-seconds", type=float, default=60.0, help="longest video accepted (default 60)")
    p.add_argument("--max-upload-mb", type=float, default=50.0, help="largest upload accepted, MB (default 50)")
    p.add_argument(
        "--max-image-mp", type=float, default=50.0, help="largest photo accepted, megapixels (default 50)"
    )
    p.add_argument(
        "--tone-lock", type=_number_between(0.0, 1.0, "0 and 1"), default=0.0, metavar="0..1",
        help="every swap's face middle takes the target's median skin tone this far (0 off, the default; as for swap)",
    )
    p.add_argument(
        "--crop-size", type=_crop_size, default=None, metavar="auto|PIXELS",
        help="every swap's aligned crop, as for swap (default: the engine's own); the template folder offers the "
        "videos precomputed with the same --crop-size",
    )  # fmt: skip
    _add_occlusion(p, "Used for every swap; the template folder offers the videos precomputed with it")
    _add_harmonize(p, "a tone harmoniser you trained, used for every swap")
    p.set_defaults(func=_cmd_app)
    return parser


class _NativeStderrSilenced:
    """Send file descriptor 2 (where MediaPipe's C++ threads log) to /dev/null for the command's
    duration, while Python's ``sys.stderr`` keeps writing to the real stream, so a failing command
    prints exactly one line. Off with ``-v`` or ``SASWAP_NATIVE_LOGS=1``."""

    def __init__(self, active: bool) -> None:
        self.active = active
        self._saved = None
        self._stderr = None

    def __enter__(self):
        if not self.active:
            return self
        try:
            sys.stderr.flush()
            fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            self.active = False
            return self
        self._fd = fd
        self._saved = os.dup(fd)
        self._stderr = sys.stderr
        sys.stderr = os.fdopen(os.dup(self._saved), "w", buffering=1)
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
        return self

    def __exit__(self, *exc) -> None:
        if not self.active or self._saved is None:
            return
        sys.stderr.flush()
        replacement = sys.stderr
        sys.stderr = self._stderr
        replacement.close()
        os.dup2(self._saved, self._fd)
        os.close(self._saved)


_LIGHTNING_COMMANDS = ("train", "train-parser", "train-harmonizer")


#: What a file system refuses (a full disk, a quota, a read-only mount, no permission, an I/O error, a name too long):
#: the user's to fix, reported in one line; any other OSError is a bug and keeps its traceback.
_FILE_SYSTEM_REFUSALS = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EIO", "ENAMETOOLONG", "EFBIG", "EMFILE", "ENFILE")
    if hasattr(errno, name)
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if command is not None and argv[command] in _LIGHTNING_COMMANDS:
        # everything after a LightningCLI command is its own, --help included
        args = parser.parse_args(argv[: command + 1])
        args.lightning_args = argv[command + 1 :]
    else:
        args = parser.parse_args(argv)
    if args.command == "swap" and (problem := _pairing_problem(args)) is not None:
        parser.error(problem)  # a usage error: one line, exit 2
    quiet = not args.verbose and not os.environ.get("SASWAP_NATIVE_LOGS")
    from saswap import interrupts

    restore_sigint = interrupts.install()  # Ctrl-C stops the command even when Python drops it in a finaliser
    with _NativeStderrSilenced(quiet), contextlib.ExitStack() as stack:
        stack.callback(restore_sigint)
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
            force=True,
        )
        try:
            return int(args.func(args) or 0)
        except SaSwapError as err:
            print(f"saswap: error: {err}", file=sys.stderr)
            return 2
        except OSError as err:
            if err.errno not in _FILE_SYSTEM_REFUSALS:
                raise
            # the file system refused something the checks above did not foresee
            where = f"{err.filename}: " if err.filename else ""
            print(f"saswap: error: {where}{err.strerror or err}", file=sys.stderr)
            return 2
        except interrupts.Terminated:
            print("saswap: terminated", file=sys.stderr)
            return 143
        except KeyboardInterrupt:
            print("saswap: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
