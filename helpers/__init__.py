"""Helpers for the foundation-model suitability study (Xie et al. 2024, re-created and extended).

The notebooks orchestrate and explain; every piece of logic they need lives here, once, tested. The folders are the
table of contents:

* ``data/``: GeoTIFF chips, the dataset loaders, the generated default data (``simulate``, ``indian_pines``);
* ``features``: the per-pixel and texture features of the classical rows;
* ``models/``: plain-torch models (CNNs, ViT, SegFormer, Prithvi, Galileo, Presto) and their pretrained weights;
* ``runs/``: ``runner`` (what every run shares: its key and skip rule, ``not_run`` rows, seeding, rows, maps), then
  one module per family (``classical``; ``train`` for every deep row; ``fm_finetuned``, ``fm_frozen``,
  ``galileo_finetuned``), pretraining, and the run engine;
* ``metrics``: dataset-level confusion matrices and scores; ``results``: the one tidy results table (run keys), and
  beside it ``prediction_maps``, the maps every run saves of a few test chips (runs write them, the report reads);
* ``report/``: comparisons over seeds, figures, tables;
* ``chain``: papermill re-execution of the numbered notebooks.
"""

import os

# OpenMP threads that spin while waiting (libgomp's default) made torch and LightGBM 10-20x slower on a shared
# 2-core machine; passive waiting costs nothing when the cores are free. It only takes effect if set before the
# first import of torch or lightgbm, hence here, at the package's import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
