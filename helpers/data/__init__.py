"""Data: reading and writing GeoTIFF chips, the dataset loaders, and the generated datasets.

``io`` (rasters, atomic writes, file locks) -> ``datasets`` (the published layouts, one API for all) and ``generic``
(a dataset of your own: any image/mask folder with a ``dataset.json`` card) -> ``simulate`` and ``indian_pines`` (the
embedded default data, written in the published layouts) from ``spectral`` (real spectral libraries resampled to HLS
bands); ``bands`` names the bands a card may list and which ones each model needs; ``download`` fetches the real
datasets. The package data files (``DATA_CARD.md``, the spectra, the paper's reported numbers) live here too.
"""
