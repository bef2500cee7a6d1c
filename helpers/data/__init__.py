"""Data: reading and writing GeoTIFF chips, the dataset loaders, and the generated datasets.

``io`` (rasters, atomic writes, file locks) -> ``datasets`` (the published layouts) -> ``simulate`` and
``indian_pines`` (the embedded default data, written in those layouts) from ``spectral`` (real spectral libraries
resampled to HLS bands); ``download`` fetches the real datasets. The package data files (``DATA_CARD.md``, the
spectra, the paper's reported numbers) live here too.
"""
