"""The ``loopml`` command line: a thin layer that parses, calls a service and renders with Rich.

``main.py`` holds the root command and entry point; each resource group has
its own module (``runs``, ``models``, ``project`` for ``init``); ``_render``
has the shared formatting helpers.
"""
