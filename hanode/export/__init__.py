"""Exports of a hanode configuration to other cluster stacks (``hanode export ...``).

CPython-only command-line features: they read the parsed ``Config`` and write
files; nothing here is used by the agent.
"""
