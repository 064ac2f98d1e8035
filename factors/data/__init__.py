"""Data shipped with the factors: the blocklist of common passwords (factors.password_rules)."""
