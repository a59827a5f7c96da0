"""Outgoing e-mail (verification and password-reset links) through a configurable SMTP server."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage

from traitlets import Bool, Integer, Unicode, default
from traitlets.config import LoggingConfigurable


class Mailer(LoggingConfigurable):
    """Sends mail through SMTP; configured as ``c.Mailer.smtp_host = ...``."""

    smtp_host = Unicode(
        "127.0.0.1", config=True, help="Host name or address of the SMTP server the hub sends mail through."
    )
    smtp_port = Integer(0, config=True, help="Port of the SMTP server (default: 465 with smtp_ssl, else 25).")
    smtp_ssl = Bool(False, config=True, help="Connect with TLS from the start (SMTPS, usually port 465).")
    smtp_starttls = Bool(False, config=True, help="Upgrade the connection with STARTTLS (usually port 587).")
    smtp_username = Unicode("", config=True, help="User name for SMTP authentication (none when empty).")
    smtp_password = Unicode("", config=True, help="Password for SMTP authentication. Never logged.")
    smtp_timeout = Integer(
        30, config=True, help="Seconds to wait for the SMTP server before the mail is given up (and logged)."
    )
    from_address = Unicode(
        config=True,
        help="The From: address of the mail the hub sends (default: ``jupyter-backendai <noreply@localhost>``).",
    )

    @default("from_address")
    def _default_from(self):
        return "jupyter-backendai <noreply@localhost>"

    def _port(self) -> int:
        return self.smtp_port or (465 if self.smtp_ssl else 25)

    def send_sync(self, to: str, subject: str, body: str) -> None:
        msg = EmailMessage()
        msg["From"] = self.from_address
        msg["To"] = to
        msg["Subject"] = subject
        msg.set_content(body)
        context = ssl.create_default_context()
        if self.smtp_ssl:
            client = smtplib.SMTP_SSL(self.smtp_host, self._port(), timeout=self.smtp_timeout, context=context)
        else:
            client = smtplib.SMTP(self.smtp_host, self._port(), timeout=self.smtp_timeout)
        with client:
            if self.smtp_starttls:
                client.starttls(context=context)
            if self.smtp_username:
                client.login(self.smtp_username, self.smtp_password)
            client.send_message(msg)
        self.log.info("Sent mail %r to %s", subject, to)

    async def send(self, to: str, subject: str, body: str) -> bool:
        """Send without blocking the hub; False (logged) when the server cannot be reached."""
        try:
            await asyncio.to_thread(self.send_sync, to, subject, body)
            return True
        except (OSError, smtplib.SMTPException) as e:
            self.log.error("Could not send mail %r to %s via %s:%s: %s", subject, to, self.smtp_host, self._port(), e)
            return False
