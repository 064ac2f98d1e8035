// node oidc-provider (pinned in package-lock.json) as bench/compare.py's peer: the same
// cases as Stepwise on the same core. One confidential client "bench" with a secret
// (client_secret_basic), client_credentials, authorization_code with the default dev
// interactions (any login and password), refresh_token with rotation on every use, and
// RS256 JWT access tokens (oidc-provider 9 issues JWT access tokens only for a resource
// server, so every token is for "urn:bench:api").
//
// Usage: node server.mjs PORT (or PORT=... node server.mjs). The issuer is its own URL.
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.argv[2] || process.env.PORT || 3000);
const issuer = `http://127.0.0.1:${port}`;
const RESOURCE = 'urn:bench:api';

// A fresh 2048-bit RSA key per start-up, like Stepwise's generated signing key.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-rs256', use: 'sig', alg: 'RS256' };

// The quick-start memory adapter is an LRU of 1,000 entries: under load it evicts live grants
// (refresh fails with invalid_grant after a few seconds) and rescans each grant's members on
// every save. This is the plain unbounded in-memory store a benchmark needs, like Stepwise's
// in-process store: entries expire on read, a grant's tokens are indexed for revocation.
const store = new Map();
const grants = new Map();
const secondary = new Map();

class MemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : Infinity;
    store.set(key, { payload, expiresAt });
    if (payload.grantId) {
      if (!grants.has(payload.grantId)) grants.set(payload.grantId, new Set());
      grants.get(payload.grantId).add(key);
    }
    if (payload.uid) secondary.set(`uid:${payload.uid}`, id);
    if (payload.userCode) secondary.set(`userCode:${payload.userCode}`, id);
  }

  async find(id) {
    const found = store.get(this.key(id));
    if (!found) return undefined;
    if (found.expiresAt <= Date.now()) {
      store.delete(this.key(id));
      return undefined;
    }
    return found.payload;
  }

  async findByUid(uid) {
    const id = secondary.get(`uid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = secondary.get(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const found = store.get(this.key(id));
    if (found) found.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grants.get(grantId) ?? []) store.delete(key);
    grants.delete(grantId);
  }
}

const configuration = {
  adapter: MemoryAdapter,
  clients: [
    {
      client_id: 'bench',
      client_secret: process.env.PEER_CLIENT_SECRET || 'bench-secret',
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1:9/cb'],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'openid offline_access',
    },
  ],
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async () => ({
        scope: 'api',
        audience: RESOURCE,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  // Rotation on every use, as Stepwise does: each refresh token is single use.
  rotateRefreshToken: true,
  pkce: { required: () => false },
};

const provider = new Provider(issuer, configuration);
// The dev interactions log a warning per interaction; keep the benchmark's output quiet.
provider.on('server_error', (_ctx, err) => console.error('server_error', err));

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
