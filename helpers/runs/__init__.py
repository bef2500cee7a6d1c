"""Runs: everything that turns a (dataset, model, seed) into rows of the results table.

* ``runner``: what every family's run shares, written once: its key and skip rule, its ``not_run`` row, seeding,
  the columns of its rows, scoring into rows, saved maps and the write to the table; one outcome type;
* ``classical``: RF / LightGBM on per-pixel (and texture) features;
* ``train``: the one deep training loop (plateau stopping, run keys) every deep row goes through; ``inference``
  predicts and scores whole chips for it, ``run_folders`` keeps each run's checkpoints and log, ``cnn_settings``
  says how the CNN rows train at each size;
* ``convergence``: whether a run's last cycle (from a restarted rate) still moved it, the check scheduled beside the
  run (``run_checked``), so the training loop knows nothing of it;
* ``pretrain``: in-study MAE / spectral pretraining of the small Prithvi-architecture encoder;
* ``fm_finetuned``: FM rows fine-tuned by ``train``: Prithvi-arch (random / MAE / spectral / probe), ViT, SegFormer,
  the real Prithvi-100M;
* ``fm_frozen``: the published Galileo-nano and Presto weights frozen: embeddings (``embeddings``, inputs mapped by
  ``fm_adapters``) with a head (``fm_heads``);
* ``galileo_finetuned``: the published Galileo-nano fine-tuned end to end by ``train``, and the same network from
  random init;
* ``matrix``: which runs notebooks 03 and 04 submit, in which order (pretraining first, first seeds early);
* ``engine``: runs as jobs on dask.distributed workers; ``runtime``: threads, precision and memory of a run.
"""
