"""JWS signing and verification per core with joserfc: RS256 (2048-bit), ES256 and EdDSA.

Each algorithm signs a typical access token's claim set (iss, sub, aud, exp, iat, jti,
client_id, scope; header alg, kid, typ at+jwt) the way the token endpoint does
(``joserfc.jwt.encode`` with the key and ``algorithms=[alg]``, idp/oidc/tokens.py), and
verifies it (``joserfc.jwt.decode``). Next to each, the same operation on the raw
``cryptography`` key over the same signing input, so the difference is joserfc's own work
(JSON, base64url, header checks, the ECDSA DER to r||s conversion). The process is pinned to
one CPU; the rounds interleave every variant, and each variant's figure is the median of
its rounds, with the spread. EdDSA uses the fully specified ``Ed25519`` alg name (RFC 9864;
the same signature as ``EdDSA``, which joserfc now warns about).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import cryptography
import joserfc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

Op = Callable[[], object]


@dataclass
class Alg:
    name: str  # as printed
    alg: str  # the JWS alg header
    key: RSAKey | ECKey | OKPKey
    raw_sign: Op
    raw_verify: Op
    encode: Op
    decode: Op
    token: str


def claims(now: int) -> dict[str, object]:
    """An access token of the client_credentials grant, as the token endpoint builds it."""
    issuer = "https://id.example.com/t/acme"
    return {
        "iss": issuer,
        "exp": now + 3600,
        "aud": issuer,
        "sub": "cl_4f1d2c9b7a8e6d5c",
        "client_id": "cl_4f1d2c9b7a8e6d5c",
        "iat": now,
        "jti": "Zk3q9sVb1xT0LwPa",
        "scope": "openid profile email",
    }


def make(name: str, alg: str, key: RSAKey | ECKey | OKPKey) -> Alg:
    header = {"alg": alg, "kid": key.kid, "typ": "at+jwt"}
    body = claims(int(time.time()))
    token = jwt.encode(header, body, key, algorithms=[alg])
    head_b64, claims_b64, _ = token.split(".")
    data = f"{head_b64}.{claims_b64}".encode()
    priv, pub = key.private_key, key.public_key
    raw_sig: bytes
    if isinstance(key, RSAKey):
        pad, sha = padding.PKCS1v15(), hashes.SHA256()
        raw_sig = priv.sign(data, pad, sha)  # type: ignore[union-attr,call-arg]

        def raw_sign() -> object:
            return priv.sign(data, pad, sha)  # type: ignore[union-attr,call-arg]

        def raw_verify() -> object:
            return pub.verify(raw_sig, data, pad, sha)  # type: ignore[union-attr,call-arg]

    elif isinstance(key, ECKey):
        ecdsa = ec.ECDSA(hashes.SHA256())
        raw_sig = priv.sign(data, ecdsa)  # type: ignore[union-attr,call-arg]

        def raw_sign() -> object:
            return priv.sign(data, ecdsa)  # type: ignore[union-attr,call-arg]

        def raw_verify() -> object:
            return pub.verify(raw_sig, data, ecdsa)  # type: ignore[union-attr,call-arg]

    else:
        raw_sig = priv.sign(data)  # type: ignore[union-attr,call-arg]

        def raw_sign() -> object:
            return priv.sign(data)  # type: ignore[union-attr,call-arg]

        def raw_verify() -> object:
            return pub.verify(raw_sig, data)  # type: ignore[union-attr,call-arg]

    public = key.__class__.import_key(key.as_dict(private=False))

    def encode() -> object:
        return jwt.encode(header, body, key, algorithms=[alg])

    def decode() -> object:
        return jwt.decode(token, public, algorithms=[alg])

    return Alg(name, alg, key, raw_sign, raw_verify, encode, decode, token)


def rate(op: Op, seconds: float) -> float:
    """Calls per second of ``op`` over about ``seconds`` (the clock read every 20 calls)."""
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20):
            op()
        calls += 20
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - start)


def spread(rates: list[float]) -> str:
    mid = statistics.median(rates)
    return f"{min(rates):,.0f}-{max(rates):,.0f} (±{(max(rates) - min(rates)) / 2 / mid:.0%})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2, help="per variant and round")
    ap.add_argument("--cpu", type=int, default=0, help="the CPU to pin this process to")
    args = ap.parse_args()
    os.sched_setaffinity(0, {args.cpu})

    algs = [
        make("RS256 (RSA 2048)", "RS256", RSAKey.generate_key(2048, auto_kid=True)),
        make("ES256 (P-256)", "ES256", ECKey.generate_key("P-256", auto_kid=True)),
        make("EdDSA (Ed25519)", "Ed25519", OKPKey.generate_key("Ed25519", auto_kid=True)),
    ]
    variants: list[tuple[str, str, Op]] = []
    for a in algs:
        variants += [
            (a.name, "sign, raw key", a.raw_sign),
            (a.name, "sign, jwt.encode", a.encode),
            (a.name, "verify, raw key", a.raw_verify),
            (a.name, "verify, jwt.decode", a.decode),
        ]
    results: dict[tuple[str, str], list[float]] = {}
    for op in (v[2] for v in variants):  # warm-up
        rate(op, 0.2)
    for r in range(args.rounds):
        for name, what, op in variants:
            results.setdefault((name, what), []).append(rate(op, args.seconds))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    print(
        f"\nJWS per core: joserfc {joserfc.__version__}, cryptography {cryptography.__version__}, "
        f"Python {sys.version.split()[0]}; this process pinned to CPU {args.cpu}; "
        f"{args.rounds} rounds of {args.seconds:g} s per variant, interleaved; median of rounds"
    )
    print(f"token: {len(algs[0].token)} chars (RS256), {len(algs[1].token)} (ES256), "
          f"{len(algs[2].token)} (EdDSA); claims {sorted(claims(0))}\n")  # fmt: skip
    print("| alg | operation | ops/s | µs/op | vs RS256 | spread |")
    print("|---|---|---|---|---|---|")
    median = {k: statistics.median(v) for k, v in results.items()}
    for name, what, _ in variants:
        ops = median[(name, what)]
        base = median[(algs[0].name, what)]
        print(f"| {name} | {what} | {ops:,.0f} | {1e6 / ops:,.1f} | {ops / base:.2f} | "
              f"{spread(results[(name, what)])} |")  # fmt: skip

    print(
        "\njoserfc's own work per token (jwt.encode or jwt.decode minus the raw key operation):\n"
    )
    print("| alg | sign: raw µs | jwt.encode µs | overhead µs (share) "
          "| verify: raw µs | jwt.decode µs | overhead µs (share) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for a in algs:
        cells = []
        for raw, full in (("sign, raw key", "sign, jwt.encode"),
                          ("verify, raw key", "verify, jwt.decode")):  # fmt: skip
            raw_us, full_us = 1e6 / median[(a.name, raw)], 1e6 / median[(a.name, full)]
            extra = full_us - raw_us
            cells.append(f"{raw_us:,.1f} | {full_us:,.1f} | {extra:,.1f} ({extra / full_us:.0%})")
        print(f"| {a.name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
