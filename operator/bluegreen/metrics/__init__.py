"""Prometheus metrics: the ``Recorder`` port as series (``recorder``), defined in ``series``, served on
``--metrics-listen`` (``server``). The only package that imports ``prometheus_client``."""
