"""Neural building blocks of the SaSwap model."""

from saswap.models.attribute_encoder import AttributeEncoder
from saswap.models.deformable_fusion import DeformableFusion
from saswap.models.discriminator import MultiScaleDiscriminator
from saswap.models.face_parser import FACE_PARSER_CLASSES, FaceParser
from saswap.models.flow_estimator import FlowEstimator
from saswap.models.fusion_generator import FusionGenerator
from saswap.models.identity_encoder import IdentityEncoder
from saswap.models.sface_encoder import SFaceEncoder
from saswap.models.tone_harmonizer import ToneHarmonizer

__all__ = [
    "AttributeEncoder",
    "DeformableFusion",
    "FACE_PARSER_CLASSES",
    "FaceParser",
    "FlowEstimator",
    "FusionGenerator",
    "IdentityEncoder",
    "MultiScaleDiscriminator",
    "SFaceEncoder",
    "ToneHarmonizer",
]
