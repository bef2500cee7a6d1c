"""Helpers for the foundation-model suitability study (Xie et al. 2024, re-created and extended).

The notebooks orchestrate and explain; every piece of logic they need lives here, once, tested:
``io`` (GeoTIFF reading/writing), ``datasets`` (loaders for the original and simulated datasets),
``metrics`` (dataset-level confusion matrices), ``results`` (the tidy results table), ``plotting``,
``chain`` (papermill re-execution of the numbered notebooks) and ``models`` (plain-torch models).
"""

import os

# OpenMP threads that spin while waiting (libgomp's default) made torch and LightGBM 10-20x slower on a shared
# 2-core machine; passive waiting costs nothing when the cores are free. It only takes effect if set before the
# first import of torch or lightgbm, hence here, at the package's import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
