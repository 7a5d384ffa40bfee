"""Training: the Lightning systems, the data modules, augmentations, the LightningCLI."""

from saswap.training.augment import FaceAugment, OccluderPaste
from saswap.training.data import FacePairsDataModule, FacePairsDataset
from saswap.training.parser_system import FaceParserSystem
from saswap.training.parsing_data import FaceParsingDataModule, FaceParsingDataset
from saswap.training.system import SaSwapSystem

__all__ = [
    "FaceAugment",
    "OccluderPaste",
    "FacePairsDataModule",
    "FacePairsDataset",
    "FaceParserSystem",
    "FaceParsingDataModule",
    "FaceParsingDataset",
    "SaSwapSystem",
]
