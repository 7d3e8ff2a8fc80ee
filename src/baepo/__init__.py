"""baepo: progressive delivery and release manager.

The public surface is the ``baepo`` command and the REST API; Python modules are internal.
"""

__version__ = "0.1.0"
