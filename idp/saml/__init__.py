"""SAML 2.0 Identity Provider (OASIS SAML 2.0 core, bindings, metadata, profiles)."""
