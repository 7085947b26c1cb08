"""PRISM kernels: GPU-ready analysis kernels for seven domains.

The math lives here, free of any web or UI import, so it runs in a script, a notebook
or on a Dask worker. Domain subpackages: ``pwsa``, ``finance``, ``pixels`` (more to come).
Shared infrastructure: ``backend`` (array library), ``store`` (SQLite persistence),
``events`` (in-process event bus), ``runtime`` (stateful services), ``batch``.
"""

__version__ = "0.1.0"
