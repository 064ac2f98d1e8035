"""The tenant console (server-rendered pages) and its JSON admin API."""
