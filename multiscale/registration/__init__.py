"""Co-registration across modalities and scales, transforms, resampling and quality."""
