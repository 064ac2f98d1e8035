"""Sending codes and notifications: SMS through a webhook or Twilio, mail through SMTP.

The ``console`` senders print to standard error for development and are refused in
production (idp.settings). Failures raise :class:`factors.errors.DeliveryFailed`; what is
logged names the provider and the error class, never the recipient or the text.
"""

from __future__ import annotations

import base64
import json
import logging
import smtplib
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage
from email.utils import make_msgid

from factors.errors import DeliveryFailed
from idp.services import MailSender, SmsSender
from idp.settings import Settings

log = logging.getLogger("idp.delivery")
TIMEOUT = 10
TWILIO_API = "https://api.twilio.com/2010-04-01/Accounts/{sid}/Messages.json"


def _post(url: str, body: bytes, headers: dict[str, str], provider: str) -> None:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DeliveryFailed(f"{provider}: not an http(s) URL")
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:  # noqa: S310
            resp.read(65536)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("%s delivery failed: %s", provider, exc.__class__.__name__)
        raise DeliveryFailed(provider) from None


class WebhookSms:
    """POST ``{"to": "+E.164", "message": "..."}`` as JSON; any 2xx is success."""

    def __init__(self, url: str, token: str = "") -> None:
        self.url, self.token = url, token

    def send(self, to: str, text: str) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "Stepwise"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        _post(self.url, json.dumps({"to": to, "message": text}).encode(), headers, "sms webhook")


class TwilioSms:
    """Twilio's Messages resource over HTTPS with Basic auth (no SDK needed)."""

    def __init__(self, sid: str, token: str, sender: str, api: str = TWILIO_API) -> None:
        self.url = api.format(sid=urllib.parse.quote(sid, safe=""))
        self.auth = base64.b64encode(f"{sid}:{token}".encode()).decode()
        self.sender = sender

    def send(self, to: str, text: str) -> None:
        body = urllib.parse.urlencode({"To": to, "From": self.sender, "Body": text}).encode()
        headers = {
            "Authorization": f"Basic {self.auth}",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        _post(self.url, body, headers, "twilio")


class SmtpMail:
    """One connection per message: notifications are rare, and no pool outlives a fork."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings

    def send(self, to: str, subject: str, text: str) -> None:
        s = self.s
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = s.mail_from, to, subject
        msg["Message-ID"] = make_msgid(domain=s.mail_from.rpartition("@")[2].strip("> ") or None)
        msg.set_content(text)
        try:
            if s.smtp_security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.smtp_host, s.smtp_port, timeout=TIMEOUT, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=TIMEOUT)
            with smtp:
                if s.smtp_security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if s.smtp_username:
                    smtp.login(s.smtp_username, s.smtp_password)
                smtp.send_message(msg)
        except (smtplib.SMTPException, OSError) as exc:
            log.warning("smtp delivery failed: %s", exc.__class__.__name__)
            raise DeliveryFailed("smtp") from None


class ConsoleSms:
    def send(self, to: str, text: str) -> None:
        print(f"[stepwise development] SMS to {to}: {text}", file=sys.stderr, flush=True)


class ConsoleMail:
    def send(self, to: str, subject: str, text: str) -> None:
        print(f"[stepwise development] mail to {to}: {subject}\n{text}\n", file=sys.stderr,
              flush=True)  # fmt: skip


def sms_sender(settings: Settings) -> SmsSender | None:
    """The configured SMS sender, or None: SMS codes are then not offered."""
    if settings.sms_sender == "webhook":
        return WebhookSms(settings.sms_webhook_url, settings.sms_webhook_token)
    if settings.sms_sender == "twilio":
        return TwilioSms(
            settings.twilio_account_sid, settings.twilio_auth_token, settings.twilio_from
        )
    return ConsoleSms() if settings.sms_sender == "console" else None


def mail_sender(settings: Settings) -> MailSender | None:
    """The configured mail sender, or None: email codes and notifications are then off."""
    if settings.mail_sender == "smtp":
        return SmtpMail(settings)
    return ConsoleMail() if settings.mail_sender == "console" else None
