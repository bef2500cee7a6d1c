"""Report: what is drawn and written from the results table.

``stats`` (intervals, paired effects) and ``compare`` (aggregates over replicates, selection on validation, the
paper's claims) feed the figures and tables; ``regime`` (the label-budget map) and ``scenes`` (one scene under several
split protocols) are the study's two other questions. Figures are grouped by the question they answer: ``figures``
(who wins, by how much, at what cost), ``data_figures``, ``feature_figures``, ``map_figures`` and
``training_figures``; ``tables`` writes the tables and ``findings.md``, ``readme`` the README's results block;
``plotting`` owns the page sizes and style of every figure. The maps the runs save for the figures are stored beside
the results table (:mod:`helpers.prediction_maps`): runs write there, the report reads.
"""
