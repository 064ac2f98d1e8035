"""A user agent string, told as people name their devices: "Firefox 133 on Linux".

The parsing is ua-parser's (the uap-core regexes that browsers' own vendors keep up to
date); only the wording is ours. The label is a hint for the user to recognise a session,
never a security decision: a user agent is whatever the client chose to send.
"""

from __future__ import annotations

from functools import lru_cache

from ua_parser import parse

UNKNOWN = "Unknown device"


@lru_cache(maxsize=512)
def label(user_agent: str) -> str:
    """``user_agent`` as "Browser major on OS" (e.g. "Chrome 131 on Windows 10"), or as much
    of that as it tells; :data:`UNKNOWN` when it tells nothing."""
    if not user_agent.strip():
        return UNKNOWN
    found = parse(user_agent)
    browser = ""
    if found.user_agent is not None and found.user_agent.family != "Other":
        browser = " ".join(p for p in (found.user_agent.family, found.user_agent.major) if p)
    system = ""
    if found.os is not None and found.os.family != "Other":
        system = found.os.family
        if found.os.major and found.os.family in {"Windows", "iOS", "Android", "Mac OS X"}:
            system += f" {found.os.major}"
            if found.os.family == "Mac OS X" and found.os.minor:
                system += f".{found.os.minor}"
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or UNKNOWN
