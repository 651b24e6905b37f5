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
"""

from ._multires import RegistrationError, channel_image
from .landmarks import landmark_transform
from .methods import check_overlap, metric_value, register
from .quality import (
    checkerboard,
    dice,
    mutual_information,
    normalized_cross_correlation,
    quality,
    quality_figure,
    target_registration_error,
)
from .resample import resample
from .slice_to_volume import reconstruct_stack, register_slice_to_volume, section_pose
from .transform import Transform, TransformError, compose, identity, linear_parts

__all__ = [
    "register",
    "resample",
    "quality",
    "Transform",
    "TransformError",
    "RegistrationError",
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
]
