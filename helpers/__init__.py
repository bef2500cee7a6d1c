"""Helpers for the foundation-model suitability study (Xie et al. 2024, re-created and extended).

The notebooks orchestrate and explain; every piece of logic they need lives here, once, tested:
``io`` (GeoTIFF reading/writing), ``datasets`` (loaders for the original and simulated datasets),
``metrics`` (dataset-level confusion matrices), ``results`` (the tidy results table), ``plotting``,
``chain`` (papermill re-execution of the numbered notebooks) and ``models`` (plain-torch models).
"""

__version__ = "0.1.0"
