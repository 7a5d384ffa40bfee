"""The compose stage shared by every engine: masks, tone, boundary correction, blending, paste-back."""

from saswap.compose.compositor import PROFILE_YAW, ComposedFace, Compositor, border_taper, is_grey, paste_back

__all__ = ["Compositor", "ComposedFace", "paste_back", "is_grey", "border_taper", "PROFILE_YAW"]
