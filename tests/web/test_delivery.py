"""The SMS and mail senders against real local servers, and the settings that guard them."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from factors.errors import DeliveryFailed
from idp.mfa.delivery import SmtpMail, TwilioSms, WebhookSms
from idp.settings import load
from testkit.servers import free_port
from tests.outbox import Outboxes


@pytest.fixture
def twilio_like() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTP server that records what a Twilio Messages request carries."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            seen.append(
                {
                    "path": self.path,
                    "auth": self.headers["Authorization"],
                    "form": {k: v[0] for k, v in parse_qs(body).items()},
                }
            )
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()
    server.server_close()


def test_twilio_sender_speaks_the_messages_api(
    twilio_like: tuple[str, list[dict[str, Any]]],
) -> None:
    base, seen = twilio_like
    sender = TwilioSms(
        "AC123", "tok", "+15005550006", api=base + "/2010-04-01/Accounts/{sid}/Messages.json"
    )
    sender.send("+16502530000", "123456 is your code")
    assert seen[0]["path"] == "/2010-04-01/Accounts/AC123/Messages.json"
    assert seen[0]["auth"] == "Basic " + base64.b64encode(b"AC123:tok").decode()
    assert seen[0]["form"] == {
        "To": "+16502530000",
        "From": "+15005550006",
        "Body": "123456 is your code",
    }


def test_unreachable_or_failing_providers_raise_delivery_failed(outboxes: Outboxes) -> None:
    with pytest.raises(DeliveryFailed):
        WebhookSms(f"http://127.0.0.1:{free_port()}/nothing-listens").send("+1650", "x")
    outboxes.sms.down = True
    with pytest.raises(DeliveryFailed):
        WebhookSms(outboxes.sms_url).send("+16502530000", "x")
    settings = load(
        {
            "env": "development",
            "smtp_host": "127.0.0.1",
            "smtp_port": free_port(),
            "mail_from": "id@acme.test",
            "smtp_security": "none",
        }
    )
    with pytest.raises(DeliveryFailed):
        SmtpMail(settings).send("a@acme.test", "s", "t")


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"sms_sender": "console"}, "development only"),
        ({"mail_sender": "console"}, "development only"),
        ({"sms_sender": "pigeon"}, "IDP_SMS_SENDER must be"),
        ({"sms_sender": "webhook", "sms_webhook_url": "ftp://x"}, "IDP_SMS_WEBHOOK_URL"),
        ({"sms_sender": "twilio"}, "IDP_TWILIO_ACCOUNT_SID"),
        ({"mail_sender": "smtp"}, "IDP_SMTP_HOST and IDP_MAIL_FROM"),
        ({"smtp_security": "ssl3"}, "IDP_SMTP_SECURITY"),
    ],
)
def test_unsafe_or_incomplete_delivery_settings_are_refused(
    overrides: dict[str, str], problem: str
) -> None:
    settings = load(
        {
            "base_url": "https://id.example",
            "secret_key": "s" * 40,
            "data_key": base64.urlsafe_b64encode(b"k" * 32).decode(),
            **overrides,
        }
    )
    assert any(problem in p for p in settings.problems()), settings.problems()
