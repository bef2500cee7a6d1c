"""Report: what is drawn and written from the results table.

``compare`` (aggregates over seeds, bootstrap intervals, selection on validation, the paper's claims) feeds
``figures`` and ``tables``; ``plotting`` owns the page sizes and style of every figure; ``prediction_maps`` stores
the maps the runs save for the figures.
"""
