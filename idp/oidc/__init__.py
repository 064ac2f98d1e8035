"""OpenID Provider (DESIGN.md): client registry now; endpoints arrive with issue 3."""
