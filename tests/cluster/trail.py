"""Where each request of a flow went: every response through the proxy is recorded with the
node that answered it (``X-Stepwise-Node``), from a ``requests`` session or a Playwright
page. (A sign-in paused between steps, to kill a node there: testkit.signin.signing_in.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from playwright.sync_api import Page, Response


@dataclass(frozen=True)
class Hop:
    method: str
    path: str
    status: int
    node: str  # "" when no node answered (an error page of the proxy itself)

    def __str__(self) -> str:
        return f"{self.node or '(proxy)'}: {self.method} {self.path} -> {self.status}"


@dataclass
class Trail:
    """The responses of one flow, in order, with the node of each."""

    hops: list[Hop] = field(default_factory=list)

    def follow(self, session: requests.Session) -> requests.Session:
        """Record every response ``session`` gets (redirects are not followed for it)."""
        session.hooks["response"].append(self._record)
        return session

    def _record(self, resp: requests.Response, *args: Any, **kwargs: Any) -> None:
        method = resp.request.method or "GET"
        path = urlsplit(resp.url).path
        self.hops.append(
            Hop(method, path, resp.status_code, resp.headers.get("X-Stepwise-Node", ""))
        )

    def watch(self, page: Page) -> None:
        """Record the pages and form posts ``page`` loads; static files go to their own
        backend in the proxy (testkit.cluster), so they are left out here too."""

        def record(resp: Response) -> None:
            path = urlsplit(resp.url).path
            if resp.url.startswith("http") and not path.startswith("/static/"):
                if path != "/favicon.ico":
                    node = resp.headers.get("x-stepwise-node", "")
                    self.hops.append(Hop(resp.request.method, path, resp.status, node))

        page.on("response", record)

    @property
    def nodes(self) -> list[str]:
        return [hop.node for hop in self.hops]

    def report(self) -> str:
        return "\n".join(str(hop) for hop in self.hops)

    def assert_crosses_nodes(self, names: set[str]) -> None:
        """Every response came from a node, all of ``names`` took part, and no two
        consecutive requests were answered by the same node: each step of the flow found
        none of the state it needs in the process that answered the step before."""
        assert self.hops and all(self.nodes), self.report()
        assert set(self.nodes) == names, self.report()
        repeats = [i for i in range(1, len(self.hops)) if self.nodes[i] == self.nodes[i - 1]]
        assert not repeats, self.report()
