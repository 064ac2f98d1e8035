"""The tenant console (HTML) and its JSON admin API."""
