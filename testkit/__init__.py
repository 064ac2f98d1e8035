"""Test support shared by the tests and the benchmarks: real helper processes (``servers``),
page readers (``html``), TOTP codes from ``oathtool`` (``totp``) and a requests-based browser
that answers the login pages (``signin``).

It imports neither ``tests`` nor ``bench``: both import it (tests/unit/test_bench_imports.py).
"""
