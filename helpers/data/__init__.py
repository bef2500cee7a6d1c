"""Data: reading and writing GeoTIFF chips, the dataset loaders, and the generated datasets.

From the bottom up (a module imports only from the ones before it; ``tests/test_layers.py`` checks it):

* ``io`` (rasters, atomic writes, file locks, the generators' writers), ``bands`` (the bands a card may list and which
  ones each model needs), ``spectral`` (real spectral libraries resampled to HLS bands), ``splits`` (block splits);
* ``chips``: the dataset types of the three published layouts, the band view and a dataset's content hash;
* ``generic`` (a dataset of your own: any image/mask folder with a ``dataset.json`` card), ``scene`` (one scene of your
  own, split into blocks), ``labels`` (label budgets as views), ``sim_crop``, ``simulate`` and ``indian_pines`` (the
  embedded default data, written in the published layouts), ``corpus`` (unlabelled imagery for pretraining);
* ``layouts``: opening a dataset by name; ``validate``: reading a whole folder and listing every problem;
* ``datasets``: the API the notebooks and runs use (open, generate on first use and check once, replicates; the types
  re-exported); ``check``: the ``python -m helpers.data.generic|scene`` commands; ``download`` fetches the real
  datasets.

The package data files (``DATA_CARD.md``, the spectra, the paper's reported numbers) live here too.
"""
