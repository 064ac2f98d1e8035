// @node-saml/node-saml as a SAML service provider, driven by tests/interop/test_saml_sps.py.
// Usage: node saml-sp.mjs SSO_URL ENTITY_ID ACS_URL IDP_CERT_BASE64
// JSON lines on stdin, one answer per line: {"cmd": "metadata"} -> {"xml"};
// {"cmd": "login", "relay": "..."} -> {"url"}; {"cmd": "validate", "SAMLResponse"} -> {"profile"} | {"error"}
import * as readline from "node:readline";
import { SAML } from "@node-saml/node-saml";

const [entryPoint, issuer, callbackUrl, idpCert] = process.argv.slice(2);
const saml = new SAML({
  entryPoint, issuer, callbackUrl, idpCert, audience: issuer,
  wantAssertionsSigned: true, wantAuthnResponseSigned: true,
  validateInResponseTo: "always", acceptedClockSkewMs: 60_000,
  identifierFormat: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
});
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

for await (const line of readline.createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line);
  try {
    if (cmd.cmd === "metadata") say({ xml: saml.generateServiceProviderMetadata(null, null) });
    else if (cmd.cmd === "login") say({ url: await saml.getAuthorizeUrlAsync(cmd.relay ?? "", undefined, {}) });
    else if (cmd.cmd === "validate") {
      const { profile } = await saml.validatePostResponseAsync({ SAMLResponse: cmd.SAMLResponse });
      say({ profile });
    } else say({ error: `unknown command ${cmd.cmd}` });
  } catch (err) {
    say({ error: String(err?.message ?? err) });
  }
}
