"""Report: what is drawn and written from the results table.

``compare`` (aggregates over seeds, bootstrap intervals, selection on validation, the paper's claims) feeds
``figures`` and ``tables``; ``plotting`` owns the page sizes and style of every figure. The maps the runs save for
the figures are stored beside the results table (:mod:`helpers.prediction_maps`): runs write there, the report reads.
"""
