"""SaSwap's losses, each a function with a module twin."""

from saswap.losses.attribute import AttributeLoss, attribute_loss
from saswap.losses.contextual import ContextualLoss, VGGFeatures, contextual_loss
from saswap.losses.gan import HingeDLoss, HingeGLoss, hinge_d_loss, hinge_g_loss
from saswap.losses.identity import IdentityLoss, identity_loss
from saswap.losses.reconstruction import (
    FlowIdentityLoss,
    KeypointLoss,
    ReconstructionLoss,
    flow_identity_loss,
    keypoint_loss,
    reconstruction_loss,
)
from saswap.losses.tv import FlowTVLoss, flow_total_variation

__all__ = [
    "AttributeLoss", "attribute_loss", "ContextualLoss", "VGGFeatures", "contextual_loss", "HingeDLoss", "HingeGLoss",
    "hinge_d_loss", "hinge_g_loss", "IdentityLoss", "identity_loss", "FlowIdentityLoss", "KeypointLoss",
    "ReconstructionLoss", "flow_identity_loss", "keypoint_loss", "reconstruction_loss", "FlowTVLoss", "flow_total_variation",
]  # fmt: skip
