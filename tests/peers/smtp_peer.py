"""A real SMTP server for Wearline's e-mail reminder tests, built on aiosmtpd.

Listens on 127.0.0.1 (--port, 0 for a free one) and prints "listening
HOST:PORT" once it accepts connections, then each message it receives as one
JSON line on stdout: the envelope (mail_from, rcpt_tos) and the parsed
message (from, to, subject, message_id, content_type, body), whether it
came over TLS, and the login used. With --cert and --key it offers STARTTLS
and requires it before any mail; with --implicit-tls as well, it speaks TLS
from the first byte instead (SMTPS). With --login USER:PASSWORD every mail
needs that AUTH login (PLAIN or LOGIN, over TLS only). Runs until killed.
"""

import argparse
import email
import email.policy
import json
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Printer:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        line = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "subject": str(msg["Subject"]),
            "message_id": str(msg["Message-ID"]),
            "content_type": msg.get_content_type(),
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "login": session.auth_data,
            "body": body.get_content().replace("\r\n", "\n") if body is not None else None,
        }
        print(json.dumps(line), flush=True)
        return "250 Message accepted for delivery"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--login")
    args = p.parse_args()
    kwargs = {}
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        if args.implicit_tls:
            # aiosmtpd counts only STARTTLS as TLS for AUTH; this connection
            # is TLS from its first byte.
            kwargs = {"ssl_context": context, "auth_require_tls": False}
        else:
            kwargs = {"tls_context": context, "require_starttls": True}
    if args.login:
        user, password = args.login.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == user and auth_data.password.decode() == password
            # Not `handled`: the server answers 535 itself.
            return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

        kwargs.update(authenticator=authenticator, auth_required=True)
    if args.port == 0:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            args.port = s.getsockname()[1]
    controller = Controller(Printer(), hostname="127.0.0.1", port=args.port, **kwargs)
    controller.start()
    print(f"listening 127.0.0.1:{args.port}", flush=True)
    try:
        threading.Event().wait()
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
