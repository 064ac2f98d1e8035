// openid-client 6 as a relying party that steps up, driven by tests/interop/test_step_up.py.
// Usage: node stepup.mjs ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI
// JSON lines on stdin, one answer line each on stdout:
//   {"cmd": "authorize", "params": {...}}      -> {"url"}
//   {"cmd": "callback", "url": "..."}           -> {"claims", "access_token"} | {"error"}
//   {"cmd": "resource", "url", "token"}         -> {"status", "body"} | {"challenges"}
import * as readline from "node:readline";
import * as client from "openid-client";

const [issuer, clientId, clientSecret, redirectUri] = process.argv.slice(2);
const config = await client.discovery(
  new URL(issuer), clientId, undefined, client.ClientSecretBasic(clientSecret),
  { execute: [client.allowInsecureRequests] },
);
client.enableNonRepudiationChecks(config); // id_token signatures checked against the JWKS
const pending = new Map();
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

async function run(cmd) {
  if (cmd.cmd === "authorize") {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const params = cmd.params ?? {};
    pending.set(state, { verifier, nonce, maxAge: params.max_age ? Number(params.max_age) : undefined });
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri, scope: "openid profile", state, nonce,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256", ...params,
    });
    return { url: url.href };
  }
  if (cmd.cmd === "callback") {
    const url = new URL(cmd.url);
    const p = pending.get(url.searchParams.get("state"));
    try {
      const tokens = await client.authorizationCodeGrant(config, url, {
        pkceCodeVerifier: p.verifier, expectedState: url.searchParams.get("state"),
        expectedNonce: p.nonce, maxAge: p.maxAge, idTokenExpected: true,
      });
      return { claims: tokens.claims(), access_token: tokens.access_token };
    } catch (err) {
      return { error: err.error ?? err.code ?? err.name, description: err.error_description ?? err.message };
    }
  }
  if (cmd.cmd === "resource") {
    try {
      const resp = await client.fetchProtectedResource(config, cmd.token, new URL(cmd.url), "GET");
      return { status: resp.status, body: await resp.json() };
    } catch (err) {
      if (err instanceof client.WWWAuthenticateChallengeError) {
        return { status: err.response?.status, challenges: err.cause };
      }
      throw err;
    }
  }
  throw new Error(`unknown command ${cmd.cmd}`);
}

for await (const line of readline.createInterface({ input: process.stdin })) {
  try {
    say(await run(JSON.parse(line)));
  } catch (err) {
    say({ error: "exception", description: String(err?.stack ?? err) });
  }
}
