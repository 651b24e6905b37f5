"""Heterogeneity analysis: plain functions over images and masks that return numbers, tables or images.

Submodules: ``texture`` (IBSI features and voxel maps), ``radial`` (periphery vs core),
``coloc`` (colocalisation), ``uptake`` (SUV metrics), ``spatial`` (ratio maps, distribution
and spatial statistics), ``msi`` (mass-spectrometry normalisation and peak picking).
Analysis never imports :mod:`multiscale.io`.
"""
