"""Authenticators (DESIGN.md "Factor"): pure Python, no web framework, no storage.

Each factor takes plain values, including the current time, and either returns plain
values or raises a typed error from :mod:`factors.errors`.
"""
