"""Batch swapping: every source photo into every template (image or video), on one machine or on Ray.

The design's service swaps each new user photo into a library of fixed template videos, with the template
work done once. :func:`run_batch` (and ``saswap batch``) runs such a campaign:

1. **Templates** -- the template cache of every video template is built first, once per template, into a
   cache folder every worker reaches (:func:`~saswap.pipelines.video.precompute_template`).
2. **Swaps** -- one job per (source, template) pair, so a video keeps its frame order and its smoothing.
   Each worker holds one copy of the models, loaded once, and reuses a source photo's analysis across the
   templates it goes into.

Backends: ``"ray"`` runs the workers as Ray actors (a local Ray instance with ``ray.init(num_cpus=N)``,
or the cluster at ``ray_address``); ``"local"`` runs one worker in this process (no Ray needed).

Manifest:
    ``manifest.jsonl`` in the output folder, one JSON object per line, appended (and synced) by the
    driver as results arrive. A ``"type": "job"`` record per finished job attempt: ``job`` (the job key),
    ``source``, ``template``, ``output``, ``kind`` (image or video), ``status`` (``done`` or ``failed``),
    ``error``, ``attempt``, ``timings`` (seconds per stage), ``bytes``, ``mtime_ns``, ``sha256`` of the
    output, ``node`` and ``pid`` of the worker, ``cache_hit`` (videos), ``saswap`` (the version),
    ``engine``, ``settings``, ``finished`` (UTC, ISO 8601). A ``"type": "template"`` record per template
    cache built or found: ``template``, ``cache``, ``hit``, ``status``, ``error``, ``node``, ``seconds``.

    The job key is a hash of the source's and the template's contents, the settings and the SaSwap version.
    A rerun of the same command skips each job whose last record says ``done`` while its output is still
    that file (same size and modification time, or else the same SHA-256); it also adopts an output whose
    provenance tag carries the job key (a worker that finished writing but died before reporting). Every
    other job runs again: failed, interrupted, changed inputs or settings. Outputs are written to a
    temporary file and renamed, so an interrupted job leaves no partial output; temporary files of
    interrupted jobs are removed.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import socket
import sys
import time
import traceback
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from saswap import __version__
from saswap.errors import SaSwapError
from saswap.io import file_identity
from saswap.pipelines.image import check_compose, check_crop_size, compose_options

__all__ = [
    "BatchSettings",
    "BatchJob",
    "BatchReport",
    "BatchWorker",
    "Manifest",
    "collect_inputs",
    "collect_source_groups",
    "plan_batch",
    "run_batch",
    "MANIFEST_NAME",
]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".avif", ".heic", ".heif")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
#: Templates that are a video or a picture by their content (an animated GIF is a video).
EITHER_SUFFIXES = (".gif",)
LIST_SUFFIXES = (".txt", ".lst", ".list")
_TAGGABLE = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class BatchSettings:
    """What every job of a batch does (part of each job's key: changing it reruns the jobs).

    Attributes:
        engine: a zoo name or a model folder (as ``SaSwapPipeline.from_pretrained`` takes).
        shape_strength: 0 keeps the target's face shape, 1 adopts the source's.
        face_index, all_faces, reference: which faces of a template to swap (at most one of them);
            ``reference`` is a photo of the person to swap. Couples: a tuple of face indices or of reference photos,
            one per person; each source is then a group of as many photos, paired by order
            (:func:`collect_source_groups`).
        enhance: face enhancer name or path, or None.
        codec, crf, preset: the video encoder settings (codec None: libx264, libvpx-vp9 for .webm outputs).
        force: use source faces turned beyond ``SOURCE_TURN_LIMIT`` (otherwise their jobs fail).
        tone_lock: the compose stage's ``tone_lock`` (:class:`~saswap.compose.Compositor`): 0 off (the default),
            1 the face's middle takes the target's median skin tone. Part of a job's key only when set, so batches
            run before the option existed keep their keys.
        crop_size: the aligned crop the faces are swapped in, as ``saswap swap --crop-size`` takes it: None the
            engine's own (the default), ``"auto"`` sized to the face (a video: its faces' median size), or a
            number of pixels. Part of a job's key only when set; a video's template cache is made for it.
        occlusion, harmonize: the compose stage's ``occlusion`` (``"parser"``, ``"rules"``, ``"off"`` or a face
            parser's folder, which cleans the sources too) and ``harmonize`` (``"off"`` or a tone harmoniser's
            folder); None: the engine's own. Part of a job's key only when set.
    """

    engine: str = "saswap-geometric"
    shape_strength: float = 1.0
    face_index: int | tuple[int, ...] | None = None
    all_faces: bool = False
    reference: str | tuple[str, ...] | None = None
    enhance: str | None = None
    codec: str | None = None
    crf: int | None = 14  # saswap.videoio.DEFAULT_CRF (this module does not import PyAV)
    preset: str | None = "veryfast"
    force: bool = False
    tone_lock: float = 0.0
    crop_size: int | str | None = None
    occlusion: str | None = None
    harmonize: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "crop_size", check_crop_size(self.crop_size))  # "512" -> 512: one key per size
        if not 0.0 <= self.shape_strength <= 1.0:
            raise SaSwapError(f"shape_strength must lie in [0, 1], got {self.shape_strength}")
        if not 0.0 <= self.tone_lock <= 1.0:
            raise SaSwapError(f"tone_lock must lie in [0, 1], got {self.tone_lock}")
        crf = self.crf
        if crf is not None and (isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 63):
            raise SaSwapError(f"crf must be a whole number from 0 to 63 (x264: 0 lossless, 51 worst), got {self.crf!r}")
        if (self.face_index is not None) + bool(self.all_faces) + (self.reference is not None) > 1:
            raise SaSwapError("choose one of face_index, all_faces and reference")
        for name in ("face_index", "reference"):  # a list (of people) kept as a tuple: the settings stay hashable
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, tuple(str(v) if name == "reference" else v for v in value))
        if self.people:
            from saswap.pipelines.image import pair_sources

            pair_sources(["source"] * self.people, self.face_index, self.all_faces, self.reference)  # its checks
        if self.occlusion is not None or self.harmonize is not None:  # a missing model folder: said at once
            check_compose(self.compose())
        for reference in self.references():
            if not Path(reference).is_file():
                raise SaSwapError(f"{reference}: no such file (the reference photo)")

    @property
    def people(self) -> int:
        """How many people each job swaps, each with a source of its own: 0 for one source per job (as ever), else
        the length of the ``face_index`` or ``reference`` tuple (a couple: 2)."""
        for value in (self.face_index, self.reference):
            if isinstance(value, tuple):
                return len(value)
        return 0

    def references(self) -> list[str]:
        """The reference photos (none, one, or one per person)."""
        if self.reference is None:
            return []
        return list(self.reference) if isinstance(self.reference, tuple) else [self.reference]

    def compose(self) -> dict[str, Any] | None:
        """The compose stage's options these settings give (None: the engine's own)."""
        return compose_options(self.tone_lock, self.occlusion, self.harmonize)

    def key_fields(self) -> dict[str, Any]:
        fields = asdict(self)
        for name in ("tone_lock", "crop_size", "occlusion", "harmonize"):  # added later: earlier batches' keys kept
            if not fields[name]:
                del fields[name]
        if isinstance(self.reference, tuple):
            fields["reference"] = [_file_hash(Path(r)) for r in self.reference]
        elif self.reference is not None:
            fields["reference"] = _file_hash(Path(self.reference))
        return fields


@dataclass(frozen=True)
class BatchJob:
    """One (source, template) swap: ``key`` names it in the manifest; ``kind`` is ``image`` or ``video``. A couple's
    job has a tuple of sources, one per person (its manifest record a list)."""

    key: str
    source: Path | tuple[Path, ...]
    template: Path
    output: Path
    kind: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.key,
            "source": [str(p) for p in self.source] if isinstance(self.source, tuple) else str(self.source),
            "template": str(self.template),
            "output": str(self.output),
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BatchJob:
        source = d["source"]
        source = tuple(Path(p) for p in source) if isinstance(source, list) else Path(source)
        return cls(d["job"], source, Path(d["template"]), Path(d["output"]), d["kind"])

    @property
    def source_name(self) -> str:
        """The source as a line shows it: a couple's photos joined by `` + ``."""
        return " + ".join(str(p) for p in self.source) if isinstance(self.source, tuple) else str(self.source)


@dataclass
class BatchReport:
    """What :func:`run_batch` did.

    Attributes:
        jobs: every job of the batch, in order.
        status: each job's outcome by key: ``done`` (this run), ``skipped`` (already done), ``failed``,
            ``planned`` (a dry run), ``todo`` (not run: interrupted).
        errors: the error message of each failed job, by key.
        templates: the template records (cache path, hit, node), by template path.
        manifest: the manifest file.
        timings: seconds: ``workers`` (starting Ray or joining it, and loading the workers' models),
            ``templates`` (stage 1), ``swaps`` (stage 2), ``total``.
    """

    jobs: list[BatchJob]
    status: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    manifest: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(s == status for s in self.status.values())

    @property
    def ok(self) -> bool:
        """True when no job failed (and none was left undone)."""
        return all(s in ("done", "skipped", "planned") for s in self.status.values())

    @property
    def jobs_per_minute(self) -> float:
        """Jobs done in this run per minute of the swap stage."""
        return 60.0 * self.count("done") / max(self.timings.get("swaps", 0.0), 1e-9)


# -- inputs and jobs -----------------------------------------------------------------------------


def _folder_files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """The files directly inside ``folder`` with one of ``suffixes`` (any case), sorted; hidden files skipped."""
    kept = (p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    return sorted(p for p in kept if p.suffix.lower() in suffixes)


def collect_inputs(items: Sequence[str | os.PathLike], role: str, *, videos: bool) -> list[Path]:
    """The files a ``--sources`` / ``--templates`` argument names, in a stable order.

    Each item is a folder (its image files, and video files when ``videos``; not recursive; hidden files
    skipped), a list file (``.txt``/``.lst``/``.list``: one path per line, relative to the list's folder,
    ``#`` comments), or a file. A file named directly is taken whatever its content: a broken one fails
    its own jobs.

    Raises:
        SaSwapError: an item does not exist, or nothing was found.

    Example:
        >>> collect_inputs(["no/such/folder"], "sources", videos=False)
        Traceback (most recent call last):
        ...
        saswap.errors.SaSwapError: no/such/folder: no such file or folder (sources)
    """
    suffixes = IMAGE_SUFFIXES + (VIDEO_SUFFIXES + EITHER_SUFFIXES if videos else ())
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found.extend(_folder_files(path, suffixes))
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as err:
                raise SaSwapError(f"{path}: cannot read the list of {role} ({err})") from None
            for n, line in enumerate(lines, 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                entry = Path(line) if Path(line).is_absolute() else path.parent / line
                if not entry.is_file():
                    raise SaSwapError(f"{path}, line {n}: {line}: no such file")
                found.append(entry)
        elif path.is_file():
            found.append(path)
        else:
            raise SaSwapError(f"{path}: no such file or folder ({role})")
    unique = list(OrderedDict((p.resolve(), p) for p in found).values())
    if not unique:
        names = ", ".join(str(i) for i in items)
        raise SaSwapError(f"{names}: no {role} found (looked for {', '.join(suffixes)})")
    return unique


def collect_source_groups(items: Sequence[str | os.PathLike], people: int) -> list[tuple[Path, ...]]:
    """The sources of a couples' batch: groups of ``people`` photos, one per person, paired by name order with the
    batch's face indices or references. Each item is a group's folder (holding its photos; hidden files skipped) or a
    folder of such folders (its sub-folders, in name order).

    Raises:
        SaSwapError: an item is missing or not a folder, or a group does not hold ``people`` photos.

    Example:
        >>> collect_source_groups(["no/such/folder"], 2)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        saswap.errors.SaSwapError: no/such/folder: no such folder (sources: for 2 people each source is a folder ...)
    """
    what = f"sources: for {people} people each source is a folder of {people} photos, or a folder of such folders"

    groups: list[tuple[Path, ...]] = []
    for item in items:
        path = Path(item)
        if not path.is_dir():
            raise SaSwapError(f"{path}: {'no such folder' if not path.exists() else 'not a folder'} ({what})")
        inner = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        folders = [path] if _folder_files(path, IMAGE_SUFFIXES) or not inner else inner
        for folder in folders:
            found = _folder_files(folder, IMAGE_SUFFIXES)
            if len(found) != people:
                names = ", ".join(p.name for p in found[:4]) + (", ..." if len(found) > 4 else "") if found else "none"
                raise SaSwapError(
                    f"{folder}: {len(found)} photo(s) ({names}), but {people} people are chosen; a couple's folder "
                    f"holds one photo per person, in the order of the face indices or references"
                )
            groups.append(tuple(found))
    unique = list(OrderedDict((tuple(p.resolve() for p in g), g) for g in groups).values())
    if not unique:
        raise SaSwapError(f"{', '.join(str(i) for i in items)}: no sources found ({what})")
    return unique


_HASHES: dict[tuple[str, int, int], str] = {}


def _file_hash(path: Path) -> str:
    """A file's SHA-256, remembered for this process while its size and modification time stay."""
    try:
        memo_key = file_identity(path)
    except OSError:
        return "missing"
    if memo_key not in _HASHES:
        from saswap.pipelines.cache import file_sha256

        _HASHES[memo_key] = file_sha256(path)
    return _HASHES[memo_key]


def _template_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    from saswap.videoio import is_video_file

    return "video" if is_video_file(path) else "image"


def _unique_stems(paths: Sequence[Path]) -> dict[Path, str]:
    """A name per path for its outputs: its stem, unless another path has the same stem (letter case aside, as a
    case-blind file system sees it) and another suffix; then each of those takes its suffix too (``a.png``,
    ``a.jpg`` -> ``a-png``, ``a-jpg``), so that a photo added beside another never takes over the other's outputs
    (a name made from the order of the files did). A name still taken (the same file name in two folders) gets
    ``-2``, ``-3``, ... in the given order.

    Example:
        >>> names = _unique_stems([Path("a.png"), Path("A.jpg"), Path("b.png"), Path("x/b.png")])
        >>> list(names.values())
        ['a-png', 'A-jpg', 'b', 'b-2']
    """
    stems: dict[str, int] = {}
    files: dict[tuple[str, str], int] = {}
    for p in paths:
        stem, suffix = p.stem.casefold(), p.suffix.casefold()
        stems[stem] = stems.get(stem, 0) + 1
        files[stem, suffix] = files.get((stem, suffix), 0) + 1
    names: dict[Path, str] = {}
    used: set[str] = set()
    for p in paths:
        stem, suffix = p.stem.casefold(), p.suffix.casefold()
        alone = stems[stem] == 1 or files[stem, suffix] > 1 or not p.suffix
        base = p.stem if alone else f"{p.stem}-{p.suffix[1:]}"
        n = 1
        while (base if n == 1 else f"{base}-{n}").casefold() in used:
            n += 1
        name = base if n == 1 else f"{base}-{n}"
        used.add(name.casefold())
        names[p] = name
    return names


def plan_batch(
    sources: Sequence[Path | tuple[Path, ...]], templates: Sequence[Path], output_dir: str | os.PathLike,
    settings: BatchSettings,
) -> list[BatchJob]:
    """Every (source, template) job, with its key and output: ``output_dir/<source>/<template>.<ext>``.

    A video template gives an ``.mp4`` (an animated GIF a ``.gif``); an image template its own format (``.png`` when
    it cannot carry the provenance tag). Jobs come ordered by source, so a worker reuses a source's analysis. A
    couple's source (a tuple of photos, :func:`collect_source_groups`) is named by its folder.
    """
    output_dir = Path(output_dir)
    named = [s[0].parent if isinstance(s, tuple) else s for s in sources]
    by_path = _unique_stems(list(dict.fromkeys(named)))
    src_names = {s: by_path[n] for s, n in zip(sources, named)}
    tpl_names = _unique_stems(templates)
    fields = json.dumps(settings.key_fields(), sort_keys=True)
    jobs = []
    seen: set[str] = set()
    for s in sources:
        s_hash = "+".join(_file_hash(p) for p in s) if isinstance(s, tuple) else _file_hash(s)
        for t in templates:
            kind = _template_kind(t)
            if kind == "video":
                ext = ".gif" if t.suffix.lower() == ".gif" else ".mp4"
            else:
                ext = t.suffix.lower() if t.suffix.lower() in _TAGGABLE else ".png"
            output = Path(src_names[s]) / f"{tpl_names[t]}{ext}"
            content = f"{s_hash}|{_file_hash(t)}|{fields}|{__version__}"
            # the same files under other names (a copy of a photo): a job of their own, whose key says its output
            # (the first keeps the key of the contents alone, as every job had before)
            ident = content if content not in seen else f"{content}|{output.as_posix()}"
            seen.add(content)
            key = hashlib.sha256(ident.encode()).hexdigest()[:24]
            jobs.append(BatchJob(key, s, t, output_dir / output, kind))
    return jobs


# -- the manifest --------------------------------------------------------------------------------


class Manifest:
    """The batch's JSON Lines record (see the module docstring); only the driver writes it."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def records(self) -> list[dict[str, Any]]:
        """Every readable record; a torn last line (a driver killed while writing) is skipped."""
        if not self.path.exists():
            return []
        out = []
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    logger.warning("%s, line %d: not a JSON record; ignored", self.path, n)
                    continue
                if isinstance(record, dict):
                    out.append(record)
        return out

    def last_jobs(self) -> dict[str, dict[str, Any]]:
        """The last record of each job key."""
        return {r["job"]: r for r in self.records() if r.get("type") == "job" and "job" in r}

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


def _output_tag(path: Path, kind: str) -> dict[str, Any] | None:
    try:
        if kind == "video":
            from saswap.videoio import read_video_tag

            return read_video_tag(path)
        from saswap.provenance import read_tag

        return read_tag(path)
    except SaSwapError:
        return None


def _is_done(job: BatchJob, record: dict[str, Any] | None) -> bool:
    """Whether ``job`` is done: its last record says so and its output is still that file."""
    if record is None or record.get("status") != "done":
        return False
    try:
        st = job.output.stat()
    except OSError:
        return False
    if st.st_size != record.get("bytes"):
        return False
    if st.st_mtime_ns == record.get("mtime_ns"):
        return True
    from saswap.pipelines.cache import file_sha256

    return file_sha256(job.output) == record.get("sha256")


def _adoptable(job: BatchJob) -> bool:
    """An output already written for this very job (its tag carries the key) by a worker that never reported."""
    if not job.output.is_file():
        return False
    tag = _output_tag(job.output, job.kind)
    return bool(tag) and tag.get("batch_job") == job.key


def _remove_temporaries(output: Path) -> None:
    """Temporary files an interrupted write of ``output`` left beside it (``.NAME.XXXXXXXX.tmp``)."""
    from saswap.io import temporary_pattern

    with contextlib.suppress(OSError):
        for tmp in output.parent.glob(temporary_pattern(output.name)):
            tmp.unlink(missing_ok=True)


def _output_facts(path: Path) -> dict[str, Any]:
    from saswap.pipelines.cache import file_sha256

    st = path.stat()
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_sha256(path)}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# -- the worker ----------------------------------------------------------------------------------


class BatchWorker:
    """One worker: one copy of the models, loaded once; runs template and swap jobs one at a time.

    The same class runs in this process (the local backend) and as a Ray actor.

    Args:
        settings: the batch settings (as a dict of :class:`BatchSettings` fields).
        cache_dir: the template cache folder (every worker must reach it).
        threads: threads for this worker (torch, OpenCV, BLAS, the video frame workers, the video codecs). With 1
            the worker keeps to one core: frames are decoded, made and encoded in turn on one thread.
    """

    def __init__(self, settings: dict[str, Any], cache_dir: str | None, threads: int = 1) -> None:
        self.settings = BatchSettings(**settings)
        self.cache_dir = cache_dir
        self.threads = max(1, int(threads))
        from saswap.face.parsing import set_threads

        set_threads(self.threads)  # the face parser's ONNX Runtime sessions
        try:
            import cv2
            from threadpoolctl import threadpool_limits

            if "torch" in sys.modules:  # not imported for it: the geometric engine's swaps need no torch (see pipe)
                sys.modules["torch"].set_num_threads(self.threads)
            cv2.setNumThreads(self.threads)
            threadpool_limits(self.threads, user_api="blas")  # for the worker's life (see saswap.pipelines.threads)
        except Exception:  # pragma: no cover - threads are a speed hint only
            pass
        self._pipe = None
        self._sources: OrderedDict[str, Any] = OrderedDict()

    @property
    def pipe(self):
        if self._pipe is None:
            from saswap.pipelines.image import SaSwapPipeline

            self._pipe = SaSwapPipeline.from_pretrained(self.settings.engine, compose=self.settings.compose())
            if "torch" in sys.modules:  # an engine that needs torch (the neural one): its share of the threads
                sys.modules["torch"].set_num_threads(self.threads)
        return self._pipe

    def where(self) -> dict[str, Any]:
        """The worker's node (host name, and the Ray node id inside Ray) and process id."""
        node = socket.gethostname()
        with contextlib.suppress(Exception):
            import ray

            if ray.is_initialized():
                node = ray.get_runtime_context().get_node_id()
        return {"node": node, "pid": os.getpid()}

    def ready(self) -> dict[str, Any]:
        """Load the models now (so their loading is not counted in the first job) and say where."""
        _ = self.pipe.analyzer
        return self.where()

    def precompute(self, template: str) -> dict[str, Any]:
        """Build (or find) one template's cache."""
        t0 = time.perf_counter()
        record: dict[str, Any] = {"type": "template", "template": template, **self.where()}
        try:
            opened, hit = self.pipe.precompute(
                template, self.cache_dir, progress=False, workers=0, crop_size=self.settings.crop_size
            )  # workers=0: a batch worker is a process already
            record.update(status="done", cache=str(opened.path), hit=bool(hit), frames=len(opened))
        except SaSwapError as err:
            record.update(status="failed", error=str(err))
        except Exception as err:
            record.update(status="failed", error=f"{template}: {type(err).__name__}: {err}", trace=traceback.format_exc())
        record["seconds"] = round(time.perf_counter() - t0, 3)
        return record

    def _source(self, path: str):
        """The prepared source and what preparing it warned about (kept with it: every job of the source is told)."""
        if path not in self._sources:
            from saswap.notes import collect_warnings

            with collect_warnings() as notes:
                prepared = self.pipe.prepare_source(path, force=self.settings.force)[0]
            self._sources[path] = (prepared, notes)
            while len(self._sources) > 8:
                self._sources.popitem(last=False)
        self._sources.move_to_end(path)
        return self._sources[path]

    def swap(self, job: dict[str, Any]) -> dict[str, Any]:
        """Run one swap job (a :meth:`BatchJob.to_dict`); the result record says ``done`` or ``failed``."""
        spec = BatchJob.from_dict(job)
        t0 = time.perf_counter()
        record: dict[str, Any] = {"type": "job", **job, **self.where()}
        created = not spec.output.parent.exists()
        timings: dict[str, float] = {}
        from saswap.notes import collect_warnings

        with collect_warnings() as notes:
            source_notes = self._swap(spec, record, timings)
        if record["status"] != "done":
            _remove_temporaries(spec.output)
            if created:
                with contextlib.suppress(OSError):
                    spec.output.parent.rmdir()
        warnings = list(dict.fromkeys(source_notes + notes))
        if warnings:  # a turned or small source face, a reference matching no face: the job is done, but said so
            record["warnings"] = warnings
        timings["job"] = time.perf_counter() - t0
        record["timings"] = {k: round(float(v), 4) for k, v in timings.items()}
        return record

    def _swap(self, spec: BatchJob, record: dict[str, Any], timings: dict[str, float]) -> list[str]:
        """:meth:`swap`'s work: fills ``record`` (``status`` and what the job made, or its ``error``) and ``timings``;
        returns what preparing its source warned about (also when the prepared source came from the worker's cache)."""
        s = self.settings
        source_notes: list[str] = []
        try:
            spec.output.parent.mkdir(parents=True, exist_ok=True)
            ts = time.perf_counter()
            if isinstance(spec.source, tuple):  # a couple: a prepared source per person
                prepared = [self._source(str(p)) for p in spec.source]
                source = [p for p, _ in prepared]
                source_notes = [note for _, notes in prepared for note in notes]
            else:
                source, source_notes = self._source(str(spec.source))
            timings["source"] = time.perf_counter() - ts
            reference = s.reference
            if spec.kind == "video":
                from saswap.pipelines.video import swap_video

                # the video's tag is swap_video's own with the job's key; a photo's is its result's (below)
                result = swap_video(
                    self.pipe, source, spec.template, spec.output, shape_strength=s.shape_strength,
                    face_index=s.face_index, all_faces=s.all_faces, reference=reference, enhance=s.enhance,
                    cache_dir=self.cache_dir, codec=s.codec, crf=s.crf, preset=s.preset, progress=False,
                    tag={"batch_job": spec.key}, workers=self.threads if self.threads > 1 else 0,
                    processes=False, analysis_workers=0, codec_threads=self.threads > 1,  # each batch worker is a process already
                    crop_size=s.crop_size,
                )  # fmt: skip
                timings.update(result.timings)
                record.update(frames=result.frames, frames_swapped=result.frames_swapped, cache_hit=result.cache_hit)
            else:
                result = self.pipe(
                    source, str(spec.template), shape_strength=s.shape_strength, face_index=s.face_index,
                    all_faces=s.all_faces, reference=reference, enhance=s.enhance, crop_size=s.crop_size,
                )  # fmt: skip
                tw = time.perf_counter()
                result.save(spec.output, batch_job=spec.key)
                timings.update(result.timings)
                timings["write"] = time.perf_counter() - tw
                record["faces"] = len(result.faces)
            record.update(status="done", **_output_facts(spec.output))
        except SaSwapError as err:
            record.update(status="failed", error=str(err))
        except Exception as err:
            record.update(status="failed", error=f"{spec.source_name} -> {spec.template}: {type(err).__name__}: {err}",
                          trace=traceback.format_exc())  # fmt: skip
        return source_notes


# -- running -------------------------------------------------------------------------------------


class _Local:
    """The local backend: one :class:`BatchWorker` in this process."""

    def __init__(self, settings: dict[str, Any], cache_dir: str | None, threads: int) -> None:
        self.worker = BatchWorker(settings, cache_dir, threads)

    def map(self, method: str, tasks: Sequence[Any], on_result: Callable[[Any, dict[str, Any]], None], **_) -> None:
        for task in tasks:
            on_result(task, getattr(self.worker, method)(task))

    def close(self) -> None:
        pass


class _Ray:
    """The Ray backend: ``workers`` actors, each loaded once; dynamic scheduling, a lost worker's job retried."""

    #: seconds a dead worker may take to be restarted by Ray before the batch goes on without it
    RECOVERY_S = 300

    def __init__(
        self, settings: dict[str, Any], cache_dir: str | None, threads: int, workers: int,
        actor_options: dict[str, Any] | None = None,
    ):  # fmt: skip
        import ray

        self.ray = ray
        options = {"num_cpus": threads, "max_restarts": -1, **(actor_options or {})}
        remote = ray.remote(BatchWorker).options(**options)
        self.actors = [remote.remote(settings, cache_dir, threads) for _ in range(workers)]
        try:
            self.where = ray.get([a.ready.remote() for a in self.actors])
        except Exception as err:
            self.close()
            raise SaSwapError(f"the batch workers could not load the models: {err}") from None

    @staticmethod
    def connect(address: str | None, num_cpus: int | None) -> bool:
        """Start a local Ray instance with ``num_cpus`` CPUs, or join the cluster at ``address``; True when
        this call started or joined it (and should shut it down)."""
        try:
            import ray
        except ImportError:
            raise SaSwapError("the Ray backend needs Ray: pip install 'saswap[batch]' (or use the local backend)") from None
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # faces are personal data: no usage reports
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=num_cpus, **kwargs)
        except Exception as err:
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            hint = ""
            if "auth" in f"{type(err.__cause__).__name__} {err.__cause__}".lower():
                hint = (
                    " (the cluster asks for its authentication token: set RAY_AUTH_MODE=token and give the "
                    "cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN, or use --ray-address auto on one of "
                    "its nodes)"
                )
            raise SaSwapError(f"cannot start or reach {where}: {type(err).__name__}: {err}{hint}") from None
        return True

    def map(
        self, method: str, tasks: Sequence[Any], on_result: Callable[[Any, dict[str, Any]], None],
        on_lost: Callable[[Any, str], bool] | None = None,
    ) -> None:  # fmt: skip
        """Run ``method(task)`` on idle actors; ``on_lost(task, why)`` is asked whether to retry a task whose
        worker died. A worker that died gets no task until Ray has restarted it (its models loaded again); one
        that does not come back within ``RECOVERY_S`` is dropped, and when none is left the remaining tasks
        are reported lost for good."""
        from ray.exceptions import RayActorError, WorkerCrashedError

        ray = self.ray
        queue = deque(tasks)
        idle = list(self.actors)
        inflight: dict[Any, tuple[Any, Any]] = {}  # a task's ref -> (actor, task); a probe's ref -> (actor, None)
        recovering: dict[Any, float] = {}  # actor -> when it died
        while queue or any(task is not None for _, task in inflight.values()):
            while queue and idle:
                actor, task = idle.pop(0), queue.popleft()
                inflight[getattr(actor, method).remote(task)] = (actor, task)
            if not inflight:  # every worker gone
                while queue:
                    task = queue.popleft()
                    if on_lost is not None:
                        on_lost(task, "no worker left")
                break
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                actor, task = inflight.pop(ref)
                try:
                    result = ray.get(ref)
                except (RayActorError, WorkerCrashedError) as err:
                    if task is None:  # still restarting: probe again shortly, or give it up
                        if time.monotonic() - recovering[actor] < self.RECOVERY_S:
                            time.sleep(0.2)
                            inflight[actor.ready.remote()] = (actor, None)
                        else:
                            logger.warning("a batch worker did not come back within %d s; going on without it", self.RECOVERY_S)
                            recovering.pop(actor)
                        continue
                    recovering[actor] = time.monotonic()
                    inflight[actor.ready.remote()] = (actor, None)
                    if on_lost is not None and on_lost(task, f"the worker died ({type(err).__name__})"):
                        queue.appendleft(task)
                    continue
                if task is None:  # restarted and loaded
                    recovering.pop(actor, None)
                    idle.append(actor)
                    continue
                idle.append(actor)
                on_result(task, result)

    def close(self) -> None:
        for actor in getattr(self, "actors", []):
            with contextlib.suppress(Exception):
                self.ray.kill(actor)
        self.actors = []


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="job", disable=not enabled, dynamic_ncols=True)


def _check_reference(path: Path) -> None:
    """Read the batch's reference photo and find a face in it, as every job would (its largest face names the person
    to swap), before any job starts.

    Raises:
        SaSwapError: the photo cannot be read (:class:`~saswap.errors.InvalidImageError`) or shows no face
            (:class:`~saswap.errors.NoFaceError`), naming the file.
    """
    from saswap.errors import NoFaceError
    from saswap.face.analyzer import FaceAnalyzer
    from saswap.io import load_image

    if not FaceAnalyzer()(load_image(path), turn="auto"):
        raise NoFaceError(f"{path}: no face found in the reference photo; no job was started")


def run_batch(
    sources: Sequence[str | os.PathLike] | str | os.PathLike,
    templates: Sequence[str | os.PathLike] | str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    settings: BatchSettings | None = None,
    backend: str = "ray",
    workers: int | None = None,
    threads: int | None = None,
    ray_address: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    dry_run: bool = False,
    progress: bool = True,
    max_attempts: int = 3,
    actor_options: dict[str, Any] | None = None,
    template_actor_options: dict[str, Any] | None = None,
    echo: Callable[[str], None] | None = None,
) -> BatchReport:
    """Swap every source photo into every template (image or video); resumable (see the module docstring).

    Args:
        sources: source photos: folders, list files or files (see :func:`collect_inputs`); for couples (``settings``
            with a tuple of face indices or references), folders of one photo per person
            (:func:`collect_source_groups`).
        templates: template videos and images, likewise.
        output_dir: where the outputs (``<source>/<template>.<ext>``) and ``manifest.jsonl`` go.
        settings: what each job does (default :class:`BatchSettings`).
        backend: ``"ray"`` (actors; local instance or ``ray_address``) or ``"local"`` (this process).
        workers: Ray actors (default: this machine's CPUs, or the cluster's); ignored by ``"local"``.
        threads: threads per worker (default: this machine's CPUs / workers on a local instance, else 1).
        ray_address: a Ray cluster to join (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``).
        cache_dir: the template cache folder; on a cluster a path every node reaches (default: the
            platform's cache folder, see :func:`~saswap.pipelines.cache.default_cache_dir`).
        dry_run: plan only; the report lists every job as ``planned`` or ``skipped``.
        progress: progress bars (jobs done, failed, ETA).
        max_attempts: tries of a job whose worker died (a job failing with an error is not retried).
        actor_options: Ray actor options of the swap workers (e.g. ``{"num_gpus": 1}`` or custom resources).
        template_actor_options: Ray actor options of separate template workers for stage 1 (default: the
            swap workers build the caches too).
        echo: where to print one line per failed job (default: the log).

    Returns:
        :class:`BatchReport`.

    Raises:
        SaSwapError: bad arguments (missing inputs, an unknown backend, Ray unreachable).
        KeyboardInterrupt: interrupted; finished jobs are in the manifest, interrupted ones leave nothing.
    """
    t_start = time.perf_counter()
    settings = settings or BatchSettings()
    if backend not in ("ray", "local"):
        raise SaSwapError(f"unknown batch backend {backend!r}; use 'ray' or 'local'")
    for name, value in (("workers", workers), ("threads", threads), ("max_attempts", max_attempts)):
        if value is not None and int(value) < 1:
            raise SaSwapError(f"{name} must be at least 1, got {value}")
    as_list = lambda x: [x] if isinstance(x, (str, os.PathLike)) else list(x)
    if settings.people:
        source_files: list[Any] = collect_source_groups(as_list(sources), settings.people)
    else:
        source_files = collect_inputs(as_list(sources), "sources", videos=False)
    template_files = collect_inputs(as_list(templates), "templates", videos=True)
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise SaSwapError(f"{output_dir}: is a file; the batch output must be a folder")
    jobs = plan_batch(source_files, template_files, output_dir, settings)
    manifest = Manifest(output_dir / MANIFEST_NAME)
    last = manifest.last_jobs()
    status: dict[str, str] = {}
    adopted = []
    for job in jobs:
        if _is_done(job, last.get(job.key)):
            status[job.key] = "skipped"
        elif _adoptable(job):
            status[job.key] = "skipped"
            adopted.append(job)
        else:
            status[job.key] = "planned" if dry_run else "todo"
    report = BatchReport(jobs, status, manifest=manifest.path)
    if dry_run:
        report.timings["total"] = time.perf_counter() - t_start
        return report

    say = echo or (lambda line: logger.warning("%s", line))
    output_dir.mkdir(parents=True, exist_ok=True)
    for job in adopted:  # written by a worker that died before reporting: record it, do not redo it
        manifest.append({"type": "job", **job.to_dict(), "status": "done", "adopted": True, "attempt": 0,
                         "saswap": __version__, "engine": settings.engine, "finished": _now(),
                         **_output_facts(job.output)})  # fmt: skip
    todo = [j for j in jobs if status[j.key] == "todo"]
    for job in todo:
        _remove_temporaries(job.output)
    if not todo:
        report.timings.update(templates=0.0, swaps=0.0, total=time.perf_counter() - t_start)
        return report

    for reference in settings.references():  # shared by every job: a photo without a face fails the batch, not each job
        _check_reference(Path(reference))

    cpus = os.cpu_count() or 1
    settings_dict = asdict(settings)
    cache = str(cache_dir) if cache_dir is not None else None
    common = {"saswap": __version__, "engine": settings.engine, "settings": settings_dict}
    attempts: dict[str, int] = {}
    by_key = {j.key: j for j in todo}
    pools: list[Any] = []

    def fail(job: BatchJob, error: str, **extra) -> None:
        status[job.key] = "failed"
        report.errors[job.key] = error
        manifest.append({"type": "job", **job.to_dict(), "status": "failed", "error": error,
                         "attempt": attempts.get(job.key, 1), "finished": _now(), **common, **extra})  # fmt: skip
        say(f"failed: {job.source_name} -> {job.template}: {error}")

    joined = False
    t0 = time.perf_counter()
    try:
        if backend == "ray":
            if ray_address:
                joined = _Ray.connect(ray_address, None)
                import ray

                n_workers = max(1, int(workers)) if workers else max(1, int(ray.cluster_resources().get("CPU", 1)))
                n_threads = max(1, int(threads)) if threads else 1
            else:
                n_workers = max(1, int(workers)) if workers else cpus
                n_threads = max(1, int(threads)) if threads else max(1, cpus // n_workers)
                joined = _Ray.connect(None, n_workers * n_threads)
            swap_pool: Any = _Ray(settings_dict, cache, n_threads, n_workers, actor_options)
        else:
            n_workers, n_threads = 1, (max(1, int(threads)) if threads else cpus)
            swap_pool = _Local(settings_dict, cache, n_threads)
        pools.append(swap_pool)
        report.timings["workers"] = time.perf_counter() - t0

        # Stage 1: the template caches, once per video template.
        t1 = time.perf_counter()
        videos = sorted({str(j.template) for j in todo if j.kind == "video"})
        if videos:
            if template_actor_options is not None and backend == "ray":
                tpl_pool: Any = _Ray(settings_dict, cache, n_threads, min(len(videos), n_workers), template_actor_options)
                pools.append(tpl_pool)
            else:
                tpl_pool = swap_pool
            bar = _progress(len(videos), 0, "templates", progress)

            def template_done(template: str, record: dict[str, Any]) -> None:
                report.templates[template] = record
                manifest.append({**record, "finished": _now(), "saswap": __version__})
                bar.update(1)

            lost_templates: dict[str, int] = {}

            def template_lost(template: str, why: str) -> bool:
                lost_templates[template] = lost_templates.get(template, 0) + 1
                if lost_templates[template] < max_attempts:
                    return True
                template_done(template, {"type": "template", "template": template, "status": "failed", "error": why})
                return False

            try:
                tpl_pool.map("precompute", videos, template_done, on_lost=template_lost)
            finally:
                bar.close()
            if tpl_pool is not swap_pool:
                tpl_pool.close()
                pools.remove(tpl_pool)
            for job in todo:
                record = report.templates.get(str(job.template))
                if job.kind == "video" and record is not None and record.get("status") != "done":
                    fail(job, record.get("error", "the template could not be analysed"))
        report.timings["templates"] = time.perf_counter() - t1

        # Stage 2: the swaps, one job per (source, template).
        t2 = time.perf_counter()
        runnable = [j.to_dict() for j in todo if status[j.key] == "todo"]
        bar = _progress(len(jobs), len(jobs) - len(runnable), "swaps", progress)

        def show() -> None:
            bar.set_postfix(done=report.count("done"), failed=report.count("failed"), refresh=False)

        def job_done(task: dict[str, Any], record: dict[str, Any]) -> None:
            job = by_key[task["job"]]
            record.update(attempt=attempts.get(job.key, 0) + 1, finished=_now(), **common)
            if record["status"] == "done":
                status[job.key] = "done"
                manifest.append(record)
            else:
                attempts[job.key] = record["attempt"]
                fail(job, record.get("error", "unknown error"), **{k: record[k] for k in ("node", "pid", "trace", "timings") if k in record})
            bar.update(1)
            show()

        def job_lost(task: dict[str, Any], why: str) -> bool:
            job = by_key[task["job"]]
            attempts[job.key] = attempts.get(job.key, 0) + 1
            _remove_temporaries(job.output)
            if _adoptable(job):  # it finished writing before its worker died
                job_done(task, {"type": "job", **task, "status": "done", "adopted": True, **_output_facts(job.output)})
                return False
            logger.warning("%s -> %s: %s; %s", job.source_name, job.template, why,
                           "retrying" if attempts[job.key] < max_attempts else "giving up")  # fmt: skip
            if attempts[job.key] < max_attempts:
                return True
            fail(job, f"{why}, {attempts[job.key]} times")
            bar.update(1)
            return False

        try:
            swap_pool.map("swap", runnable, job_done, on_lost=job_lost)
        finally:
            bar.close()
        report.timings["swaps"] = time.perf_counter() - t2
    finally:
        for pool in pools:
            pool.close()
        if joined:
            import ray

            with contextlib.suppress(Exception):
                ray.shutdown()
        for job in todo:  # interrupted jobs leave nothing behind
            if status[job.key] == "todo":
                _remove_temporaries(job.output)
    report.timings["total"] = time.perf_counter() - t_start
    return report


def describe(report: BatchReport) -> Iterable[str]:
    """Human-readable lines about a finished (or dry) batch."""
    n = len(report.jobs)
    parts = [f"{report.count(s)} {s}" for s in ("done", "skipped", "failed", "planned", "todo") if report.count(s)]
    yield f"batch: {n} job(s): " + ", ".join(parts)
    if report.count("done") and report.timings.get("swaps"):
        yield (
            f"  {report.jobs_per_minute:.1f} jobs per minute; workers started in {report.timings.get('workers', 0):.1f} s, "
            f"templates {report.timings.get('templates', 0):.1f} s, "
            f"swaps {report.timings['swaps']:.1f} s, total {report.timings.get('total', 0):.1f} s"
        )
    for job in report.jobs:
        if report.status[job.key] == "failed":
            yield f"  failed: {job.source_name} -> {job.template}: {report.errors.get(job.key, '')}"
    if report.manifest is not None:
        yield f"  manifest: {report.manifest}"
