"""Monitoring: data drift, input and output quality, latency and errors, performance from
delayed feedback labels (concept drift), model age, alert rules and HTML reports.

Drift statistics live in :mod:`loopml.monitoring.drift` (fit a :class:`~loopml.monitoring.drift.Reference`
once from the training data, then :func:`~loopml.monitoring.drift.detect_drift` on each window of
production data).
"""
