"""The OpenID Provider (OpenID Connect Core 1.0 on OAuth 2.0, authlib's server classes).

Where each piece is:

- ``browser`` and ``endpoints``: the web modules (Flask), the browser's endpoints
  (authorize, consent, end-session) and the machines' (token, userinfo, revoke, introspect,
  jwks, discovery), each with its one error renderer; ``current``: the Flask request's
  :class:`~idp.oidc.context.Context`. No other module here imports Flask.
- ``authorize``: the authorization request's checks and response; ``provider``: authlib's
  server, client authentication and the token response; ``grants``: the code, refresh and
  client-credentials grants; ``resources``: UserInfo, revocation, introspection.
- ``id_token``: the ID Token, built and verified; ``tokens``: JWS with the tenant's keys;
  ``keys``: the keys themselves; ``clients``, ``claims``, ``acr``, ``discovery``.
- ``errors``: the OAuth errors' base and the one reason -> error table (``OIDC_ERRORS``).
"""
