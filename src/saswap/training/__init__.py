"""Training: the Lightning system, the face-pairs data module, augmentations, the LightningCLI."""

from saswap.training.augment import FaceAugment, OccluderPaste
from saswap.training.data import FacePairsDataModule, FacePairsDataset
from saswap.training.system import SaSwapSystem

__all__ = ["FaceAugment", "OccluderPaste", "FacePairsDataModule", "FacePairsDataset", "SaSwapSystem"]
