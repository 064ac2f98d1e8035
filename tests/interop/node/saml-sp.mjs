// @node-saml/node-saml as a SAML service provider, driven by tests/interop/test_saml_sps.py.
// Usage: node saml-sp.mjs SSO_URL ENTITY_ID ACS_URL IDP_CERT_BASE64 SLO_URL SP_SLO_URL
// JSON lines on stdin, one answer per line:
//   {"cmd": "metadata"} -> {"xml"}
//   {"cmd": "login", "relay", "binding": "redirect"|"post", "options": {...}} -> {"url"} | {"form"}
//   {"cmd": "validate", "SAMLResponse"} -> {"profile", "xml"} | {"error"}
//   {"cmd": "logout", "profile"} -> {"url"};  {"cmd": "logged_out", "SAMLResponse"} -> {"loggedOut"}
import * as readline from "node:readline";
import { SAML } from "@node-saml/node-saml";
import cache from "@node-saml/node-saml/lib/in-memory-cache-provider.js";

const [entryPoint, issuer, callbackUrl, idpCert, logoutUrl, logoutCallbackUrl] = process.argv.slice(2);
const cacheProvider = new cache.InMemoryCacheProvider({}); // InResponseTo checks across instances
const sp = (options = {}) => new SAML({
  entryPoint, issuer, callbackUrl, idpCert, audience: issuer, logoutUrl, logoutCallbackUrl,
  wantAssertionsSigned: true, wantAuthnResponseSigned: true, cacheProvider,
  validateInResponseTo: "always", acceptedClockSkewMs: 60_000,
  identifierFormat: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent", ...options,
});
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

for await (const line of readline.createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line);
  try {
    const saml = sp(cmd.options ?? {});
    if (cmd.cmd === "metadata") say({ xml: saml.generateServiceProviderMetadata(null, null) });
    else if (cmd.cmd === "login" && cmd.binding === "post") {
      say({ form: await saml.getAuthorizeFormAsync(cmd.relay ?? "", undefined, {}) });
    } else if (cmd.cmd === "login") {
      say({ url: await saml.getAuthorizeUrlAsync(cmd.relay ?? "", undefined, {}) });
    } else if (cmd.cmd === "validate") {
      const { profile } = await saml.validatePostResponseAsync({ SAMLResponse: cmd.SAMLResponse });
      say({ profile, xml: profile.getAssertionXml() });
    } else if (cmd.cmd === "logout") {
      say({ url: await saml.getLogoutUrlAsync(cmd.profile, "bye-3", {}) });
    } else if (cmd.cmd === "logged_out") { // a LogoutResponse over HTTP-POST
      const { loggedOut } = await saml.validatePostResponseAsync({ SAMLResponse: cmd.SAMLResponse });
      say({ loggedOut });
    } else say({ error: `unknown command ${cmd.cmd}` });
  } catch (err) {
    say({ error: String(err?.message ?? err) });
  }
}
