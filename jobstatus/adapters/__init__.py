"""Thin glue between a web framework and :class:`~jobstatus.StatusService`.

One module per framework, each importing its framework only when imported itself.
"""
