"""Pausing sending for a whole tenant or one connection ("stop everything"), and resuming it.

A pause holds what has not left yet (queued runs stay queued, scheduled fires wait, new
triggers are refused) and lets what already reached the vendor finish and be recorded. The
engine asks selectors.sending_pause_for before a request leaves; services pause and resume.
"""
