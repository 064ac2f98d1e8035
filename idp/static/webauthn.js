// WebAuthn in the browser: read the server's options (a JSON data block, so the CSP needs no
// inline script), call navigator.credentials, put the JSON result in the form, submit it.
// Buttons: <button type="button" data-webauthn="create|get" data-form="ID">.
"use strict";
(() => {
  const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const unb64 = (s) => Uint8Array.from(
    atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4)),
    (c) => c.charCodeAt(0));
  const block = document.getElementById("webauthn-options");
  if (!block || !window.PublicKeyCredential) return;
  const options = JSON.parse(block.textContent);
  const creating = "user" in options;
  const publicKey = { ...options, challenge: unb64(options.challenge) };
  if (creating) {
    publicKey.user = { ...options.user, id: unb64(options.user.id) };
    publicKey.excludeCredentials = (options.excludeCredentials || [])
      .map((c) => ({ ...c, id: unb64(c.id) }));
  } else {
    publicKey.allowCredentials = (options.allowCredentials || [])
      .map((c) => ({ ...c, id: unb64(c.id) }));
  }
  const encode = (cred) => {
    const r = cred.response, out = { id: cred.id, rawId: b64(cred.rawId), type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults(), response: {
        clientDataJSON: b64(r.clientDataJSON) } };
    if (r.attestationObject) {
      out.response.attestationObject = b64(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = b64(r.authenticatorData);
      out.response.signature = b64(r.signature);
      if (r.userHandle) out.response.userHandle = b64(r.userHandle);
    }
    if (cred.authenticatorAttachment) out.authenticatorAttachment = cred.authenticatorAttachment;
    return JSON.stringify(out);
  };
  const submit = (form, cred) => {
    form.querySelector("input[name=credential]").value = encode(cred);
    form.submit();
  };
  let pending = null; // a conditional (autofill) request, aborted before a modal one
  const say = (text) => {
    const where = document.getElementById("webauthn-status");
    if (where) where.textContent = text;
  };
  document.querySelectorAll("[data-webauthn]").forEach((button) => {
    button.addEventListener("click", async () => {
      const form = document.getElementById(button.dataset.form);
      if (pending) pending.abort();
      try {
        const cred = creating
          ? await navigator.credentials.create({ publicKey })
          : await navigator.credentials.get({ publicKey });
        submit(form, cred);
      } catch (err) {
        say("The browser did not complete it (" + err.name + "). Try again or use another method.");
      }
    });
  });
  // Passkey autofill on the username field where the browser supports it.
  const field = document.querySelector("input[autocomplete~=webauthn]");
  if (!creating && field && PublicKeyCredential.isConditionalMediationAvailable) {
    PublicKeyCredential.isConditionalMediationAvailable().then((ok) => {
      if (!ok) return;
      pending = new AbortController();
      navigator.credentials.get({ publicKey, mediation: "conditional", signal: pending.signal })
        .then((cred) => submit(document.getElementById("passkey-form"), cred))
        .catch(() => {});
    });
  }
})();
