"""Co-registration across modalities and scales, transforms, resampling and quality.

Direction convention (SimpleITK's): a :class:`Transform` maps points of the **fixed** frame to
the **moving** frame (mm, rows in ``(x, y[, z])`` order); images travel the other way, so
``resample(moving, fixed, register(fixed, moving))`` brings the moving image onto the fixed grid.

Typical use::

    t = register(mri, pet, transform="rigid", metric="mattes_mi")   # PET -> MRI frame
    pet_on_mri = resample(pet, mri, t)
    report = quality(mri, pet, t, figure="pet_on_mri.png")
    t.save("pet_to_mri.tfm")                                         # + pet_to_mri.tfm.json
    chain = t_mri_to_block.compose(t_block_to_histo, t_histo_to_msi)   # points: MRI -> ... -> MSI
    msi_on_mri = resample(msi, mri, chain)                            # one interpolation

A study's steps are library calls too: :func:`resample_chain` (an image through its chain of
registrations into a reference frame or an :func:`analysis_grid`), :func:`alignment_quality`
(the flat quality record of one registration, against landmarks and a :func:`truth_transform`)
and :func:`registration_figure`.
"""

from multiscale.errors import RegistrationError, TransformError

from ._multires import channel_image
from .landmarks import landmark_transform
from .methods import check_overlap, metric_value, register
from .quality import (
    alignment_quality,
    central_slice,
    checkerboard,
    checkerboard_array,
    dice,
    mutual_information,
    normalized_cross_correlation,
    overlay_figure,
    quality,
    quality_figure,
    registration_figure,
    target_registration_error,
)
from .reference_data import read_landmarks, truth_transform
from .resample import analysis_grid, anti_alias, resample, resample_chain
from .slice_to_volume import register_slice_to_volume, section_pose
from .stacks import reconstruct_stack
from .transform import Transform, compose, compose_chain, identity, linear_parts, linear_summary
from .warnings import RegistrationWarning

__all__ = [
    "overlay_figure",
    "register",
    "resample",
    "quality",
    "Transform",
    "TransformError",
    "RegistrationError",
    "RegistrationWarning",
    "compose",
    "identity",
    "linear_parts",
    "landmark_transform",
    "register_slice_to_volume",
    "section_pose",
    "reconstruct_stack",
    "channel_image",
    "metric_value",
    "check_overlap",
    "target_registration_error",
    "dice",
    "mutual_information",
    "normalized_cross_correlation",
    "checkerboard",
    "quality_figure",
    "resample_chain",
    "analysis_grid",
    "anti_alias",
    "compose_chain",
    "linear_summary",
    "truth_transform",
    "read_landmarks",
    "alignment_quality",
    "checkerboard_array",
    "central_slice",
    "registration_figure",
]
