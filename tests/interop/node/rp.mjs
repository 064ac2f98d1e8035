// A relying party built on a real OpenID Connect library, driven by tests/interop.
// Usage: node rp.mjs openid-client|oauth4webapi ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI LOGOUT_URI
// (the scope asked for: $RP_SCOPE, by default "openid profile email")
// Protocol (JSON lines): prints {"authorize": URL}; reads the callback URL on stdin; prints
// {"claims", "userinfo", "refreshed", "logout"}. Any failure prints {"error": ...} and exits 1.
import * as readline from "node:readline";

const [lib, issuer, clientId, clientSecret, redirectUri, logoutUri] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const callback = async () => new URL((await lines.next()).value.trim());
const scope = process.env.RP_SCOPE || "openid profile email"; // RP_SCOPE: the claims tests

async function withOpenidClient() {
  const client = await import("openid-client");
  const config = await client.discovery(
    new URL(issuer), clientId, undefined, client.ClientSecretBasic(clientSecret),
    { execute: [client.allowInsecureRequests] },
  );
  client.enableNonRepudiationChecks(config); // verify id_token signatures against the JWKS
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  say({ authorize: client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope, state, nonce,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
  }).href });
  const tokens = await client.authorizationCodeGrant(config, await callback(), {
    pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  const logout = client.buildEndSessionUrl(config, {
    id_token_hint: refreshed.id_token ?? tokens.id_token,
    post_logout_redirect_uri: logoutUri, state: "bye-1",
  });
  return { claims, userinfo, refreshed: refreshed.claims() ?? {}, logout: logout.href,
           rotated: refreshed.refresh_token !== tokens.refresh_token };
}

async function withOauth4webapi() {
  const oauth = await import("oauth4webapi");
  const insecure = { [oauth.allowInsecureRequests]: true };
  const url = new URL(issuer);
  const as = await oauth.processDiscoveryResponse(url, await oauth.discoveryRequest(url, insecure));
  const client = { client_id: clientId };
  const auth = oauth.ClientSecretBasic(clientSecret);
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  const authorize = new URL(as.authorization_endpoint);
  for (const [k, v] of Object.entries({
    client_id: clientId, redirect_uri: redirectUri, response_type: "code", scope, state, nonce,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier), code_challenge_method: "S256",
  })) authorize.searchParams.set(k, v);
  say({ authorize: authorize.href });
  const params = oauth.validateAuthResponse(as, client, await callback(), state);
  const response = await oauth.authorizationCodeGrantRequest(
    as, client, auth, params, redirectUri, verifier, insecure);
  const result = await oauth.processAuthorizationCodeResponse(as, client, response, {
    expectedNonce: nonce, requireIdToken: true });
  await oauth.validateApplicationLevelSignature(as, response, insecure);
  const claims = oauth.getValidatedIdTokenClaims(result);
  const userinfo = await oauth.processUserInfoResponse(as, client, claims.sub,
    await oauth.userInfoRequest(as, client, result.access_token, insecure));
  const refreshResponse = await oauth.refreshTokenGrantRequest(
    as, client, auth, result.refresh_token, insecure);
  const refreshed = await oauth.processRefreshTokenResponse(as, client, refreshResponse);
  await oauth.validateApplicationLevelSignature(as, refreshResponse, insecure);
  const logout = new URL(as.end_session_endpoint);
  logout.searchParams.set("id_token_hint", refreshed.id_token ?? result.id_token);
  logout.searchParams.set("post_logout_redirect_uri", logoutUri);
  logout.searchParams.set("state", "bye-1");
  return { claims, userinfo, refreshed: oauth.getValidatedIdTokenClaims(refreshed) ?? {},
           logout: logout.href, rotated: refreshed.refresh_token !== result.refresh_token };
}

try {
  say(lib === "openid-client" ? await withOpenidClient() : await withOauth4webapi());
  process.exit(0);
} catch (err) {
  say({ error: `${err.name}: ${err.message} ${err.code ?? ""} ${JSON.stringify(err.cause ?? "")}` });
  process.exit(1);
}
