"""Stepwise, the identity provider: the web application (DESIGN.md "Layout").

Importing this package loads nothing; the app factory is :func:`idp.app.create_app`.
"""
