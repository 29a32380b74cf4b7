//! The `email` reminder channel: a plain-text message to the address in the
//! customer's settings, through the hub's SMTP relay (`[reminders.smtp]`),
//! with lettre on tokio and rustls (no OpenSSL). One connection per message;
//! a failure is retried like any channel's (`super::deliver_due`). The
//! Message-ID is the reminder's own, the same on every attempt, so a relay
//! or mail client can drop a copy that a lost answer made us send twice.

use crate::config::{SmtpConfig, SmtpTls};
use crate::store::{ReminderRow, ReminderSettings};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;
use wearline_models::reminders::{email_body, subject};

/// Time limit of each step of an SMTP exchange (connecting included).
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The relay, ready to send (cheap to clone).
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// The transport for `c`; an error when the host is no TLS server name
    /// or the CA file holds no usable certificate.
    pub fn new(c: &SmtpConfig) -> Result<Mailer, String> {
        let tls = match c.tls {
            SmtpTls::None => Tls::None,
            mode => {
                let mut b = TlsParameters::builder(c.host.clone());
                if let Some(pem) = &c.ca_pem {
                    let ca = Certificate::from_pem(pem).map_err(|e| format!("the CA file: {}", chain(&e)))?;
                    b = b
                        .certificate_store(CertificateStore::None)
                        .add_root_certificate(ca);
                }
                let params = b
                    .build_rustls()
                    .map_err(|e| format!("TLS to `{}`: {}", c.host, chain(&e)))?;
                if mode == SmtpTls::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.as_str())
            .port(c.port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if let Some((user, password)) = &c.login {
            b = b.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Mailer {
            transport: b.build(),
            from: c.from.clone(),
        })
    }

    /// Sends reminder `r` to the customer's address.
    pub async fn send(&self, settings: &ReminderSettings, r: &ReminderRow) -> Result<(), String> {
        let to = settings
            .email
            .as_deref()
            .ok_or("no e-mail address in the customer's settings")?;
        let to: Mailbox = to
            .parse()
            .map_err(|e| format!("the customer's e-mail address `{to}`: {e}"))?;
        let message = message(&self.from, to, r)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP: {}", chain(&e)))
    }
}

impl Mailer {
    /// Sends a plain-text notice to the service team (`to`, addresses
    /// checked when the config was read); `id` makes its Message-ID.
    pub async fn notify(&self, to: &[String], id: &str, subject: &str, body: &str) -> Result<(), String> {
        let mut builder = Message::builder().from(self.from.clone());
        for address in to {
            let mailbox: Mailbox = address
                .parse()
                .map_err(|e| format!("the address `{address}`: {e}"))?;
            builder = builder.to(mailbox);
        }
        let message = builder
            .subject(subject)
            .message_id(Some(format!("<wearline-{id}@{}>", self.from.email.domain())))
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string())
            .map_err(|e| format!("cannot build the e-mail: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP: {}", chain(&e)))
    }
}

/// Delivers `r` by e-mail, when this hub has a relay.
pub async fn deliver(
    mailer: Option<&Mailer>,
    settings: &ReminderSettings,
    r: &ReminderRow,
) -> Result<(), String> {
    match mailer {
        Some(m) => m.send(settings, r).await,
        None => Err("e-mail is not set up on this hub (no `[reminders.smtp]` in its config)".into()),
    }
}

/// The e-mail of reminder `r`: plain text, its subject saying what is due
/// and when, its body the reminder's text (as rendered for this attempt).
pub fn message(from: &Mailbox, to: Mailbox, r: &ReminderRow) -> Result<Message, String> {
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject(&r.consumable, r.remaining_days))
        .message_id(Some(format!(
            "<wearline-reminder-{}@{}>",
            r.id,
            from.email.domain()
        )))
        .header(ContentType::TEXT_PLAIN)
        .body(email_body(&r.message, &r.device_id))
        .map_err(|e| format!("cannot build the e-mail: {e}"))
}

/// An error with its causes: "Connection error: Connection refused (os error 111)".
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tls: SmtpTls, host: &str) -> SmtpConfig {
        SmtpConfig {
            host: host.into(),
            port: 2525,
            tls,
            from: "Wearline <reminders@example.com>".parse().expect("from"),
            login: None,
            ca_pem: None,
        }
    }

    fn row() -> ReminderRow {
        ReminderRow {
            id: 42,
            customer_id: 1,
            device_id: "purifier-0001".into(),
            consumable: "filter".into(),
            life_start_ms: 0,
            point_days: 30.0,
            channel: "email".into(),
            remaining_days: 12.2,
            message: "The filter of your air purifier has about 12 days of life left.".into(),
            status: "pending".into(),
            attempts: 0,
            next_attempt_ms: 0,
            last_error: None,
            created_ms: 0,
            sent_ms: None,
            command_id: None,
        }
    }

    #[test]
    fn reminders_are_plain_text_mails_with_a_subject_and_a_stable_id() {
        let from: Mailbox = "Wearline <reminders@example.com>".parse().expect("from");
        let to: Mailbox = "ann@example.org".parse().expect("to");
        let m = message(&from, to, &row()).expect("message");
        let text = String::from_utf8(m.formatted()).expect("utf-8");
        for line in [
            "From: Wearline <reminders@example.com>",
            "To: ann@example.org",
            "Subject: Filter replacement due in about 12 days",
            "Message-ID: <wearline-reminder-42@example.com>",
            "Content-Type: text/plain; charset=utf-8",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
        assert!(
            text.contains("about 12 days of life left.\r\n\r\nAppliance: purifier-0001"),
            "{text}"
        );
    }

    #[test]
    fn every_tls_mode_builds_and_a_bad_ca_is_refused() {
        for mode in [SmtpTls::None, SmtpTls::Starttls, SmtpTls::Tls] {
            Mailer::new(&config(mode, "smtp.example.com")).expect("builds");
        }
        Mailer::new(&config(SmtpTls::Tls, "127.0.0.1")).expect("an IP address is a server name too");
        let mut bad = config(SmtpTls::Starttls, "smtp.example.com");
        bad.ca_pem = Some(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".to_vec());
        assert!(Mailer::new(&bad).is_err());
    }

    #[tokio::test]
    async fn without_a_relay_or_an_address_the_attempt_fails_and_says_why() {
        let mut settings = ReminderSettings::defaults(1);
        let e = deliver(None, &settings, &row()).await.expect_err("no relay");
        assert!(e.contains("[reminders.smtp]"), "{e}");
        let mailer = Mailer::new(&config(SmtpTls::None, "127.0.0.1")).expect("mailer");
        let e = deliver(Some(&mailer), &settings, &row())
            .await
            .expect_err("no address");
        assert!(e.contains("no e-mail address"), "{e}");
        // Nothing listens on the relay's port: the connection error is kept.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mailer = Mailer::new(&SmtpConfig {
            port,
            ..config(SmtpTls::None, "127.0.0.1")
        })
        .expect("mailer");
        settings.email = Some("ann@example.org".into());
        let e = deliver(Some(&mailer), &settings, &row())
            .await
            .expect_err("refused");
        assert!(
            e.starts_with("SMTP: ") && e.to_lowercase().contains("refused"),
            "{e}"
        );
    }
}
