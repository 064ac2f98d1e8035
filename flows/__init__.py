"""The flow engine (DESIGN.md "Policy -> plan"): policy -> plan -> steps. Pure Python, no Flask."""
