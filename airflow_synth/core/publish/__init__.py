"""Publish: where synthetic outputs go (layout), what describes them (manifest), how they
become visible at once (store, ``latest`` pointer, quarantine of failed runs), and how
their freshness is read back (health).

Only synthetic data and reports reach this room.
"""
