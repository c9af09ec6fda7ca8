"""Altcraft in the browser and on the command line: the trigger campaign registry, bulk trigger
launches (`start_batch`) and profile import + launch tasks, sent in chunks through the run engine.

Public surface: `services` (writes), `selectors` (reads), `models`; the rest is plumbing.
"""
