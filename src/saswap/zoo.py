"""The model zoo: a registry of pretrained names (like timm's pretrained configs).

Each entry is frozen; registering a name twice is an error. ``SaSwapPipeline.from_pretrained``
resolves a zoo name, a Hugging Face Hub id, a ModelScope id or a local folder to a local folder, then
loads the components named in its ``model_index.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["COMPONENTS", "ZooEntry", "register", "get_entry", "list_models", "ZOO"]

#: Zoo engines that are components of the compose stage, not swap engines: engine -> how to use them.
COMPONENTS = {
    "parser": "the face parser the compose stage uses (saswap swap --occlusion, Compositor(occlusion=...)); load it "
    "with saswap.models.FaceParser.from_pretrained",
    "harmonizer": "the tone harmoniser the compose stage uses (saswap swap --harmonize, Compositor(harmonize=...)); "
    "load it with saswap.models.ToneHarmonizer.from_pretrained",
}


@dataclass(frozen=True)
class ZooEntry:
    """One pretrained configuration.

    Attributes:
        name: kebab-case name, e.g. ``saswap-256``.
        engine: engine type (``geometric``, ``saswap``, ``onnx``), or a component of the compose stage, not a
            swap engine (:data:`COMPONENTS`: ``parser`` for the face parser, ``harmonizer`` for the tone
            harmoniser).
        hub_repo: Hugging Face Hub repository with the weights ("" when none are needed).
        modelscope_repo: ModelScope mirror ("" when none).
        revision: pinned revision of the repository.
        image_size: the engine's crop size.
        recipe: training recipe that produced (or will produce) the weights.
        licence: licence of the weights (and of data the engine loads).
        published: whether the weights can be downloaded today.
        description: one line for listings.
    """

    name: str
    engine: str
    hub_repo: str = ""
    modelscope_repo: str = ""
    revision: str = "main"
    image_size: int = 256
    recipe: str = ""
    licence: str = "Apache-2.0"
    published: bool = False
    description: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


ZOO: dict[str, ZooEntry] = {}


def register(entry: ZooEntry) -> ZooEntry:
    """Add an entry; a name registered twice raises ``ValueError``."""
    if entry.name in ZOO:
        raise ValueError(f"zoo name {entry.name!r} is already registered")
    ZOO[entry.name] = entry
    return entry


def get_entry(name: str) -> ZooEntry | None:
    return ZOO.get(name)


def list_models() -> list[str]:
    """Registered names, sorted.

    Example:
        >>> "saswap-geometric" in list_models()
        True
    """
    return sorted(ZOO)


register(
    ZooEntry(
        name="saswap-geometric",
        engine="geometric",
        image_size=384,
        licence="Apache-2.0 code; the default 3D prior loads BFM-derived data (non-commercial), see README",
        published=True,
        description="training-free, shape-aware geometric engine (3D prior + face mesh); no weights",
    )
)
register(
    ZooEntry(
        name="saswap-256",
        engine="saswap",
        hub_repo="saswap/saswap-256",
        modelscope_repo="saswap/saswap-256",
        image_size=256,
        recipe="recipes/saswap-256.yaml",
        published=False,
        description="the neural SaSwap model at 256x256 (weights not trained yet)",
    )
)
register(
    ZooEntry(
        name="saswap-tiny-test",
        engine="saswap",
        hub_repo="saswap/saswap-tiny-test",
        image_size=64,
        recipe="recipes/debug-tiny.yaml",
        published=False,
        description="a tiny random neural model for tests",
    )
)
register(
    ZooEntry(
        name="saswap-face-parser",
        engine="parser",
        image_size=256,
        recipe="recipes/face-parser.yaml",
        published=True,
        description="face parser with occlusion (what covers a face), trained by the project; ships inside the package",
    )
)
register(
    ZooEntry(
        name="saswap-tone-harmonizer",
        engine="harmonizer",
        image_size=256,
        recipe="recipes/tone-harmonizer.yaml",
        published=False,
        description="learned tone and light harmonisation of a swapped face (recipe and code ready; no weights measure better yet)",
    )
)
