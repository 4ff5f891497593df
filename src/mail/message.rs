//! The mails rally writes, and turning an outbox row into an RFC 5322 message.

use chrono::NaiveDate;

use crate::events::fields::Change;
use crate::events::types::EventRow;
use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;

/// A mail to be written to the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    pub recipient: String,
    pub subject: String,
    pub body: String,
}

/// The organizer's notice for a new event, worded as the Django app words it.
pub fn event_created(recipient: &str, name: &str, date: NaiveDate, id: &str) -> NewMail {
    NewMail {
        recipient: recipient.to_string(),
        subject: "New event created".into(),
        body: format!(
            "A new event has been created.\n\nName: {name}\nDate: {date}\nId: {id}\n",
            date = date.format("%Y-%m-%d")
        ),
    }
}

/// The line that identifies the event in a mail.
fn event_ref(event: &EventRow) -> String {
    format!("Id: {}\n", event.id)
}

/// A seat came free and is now the recipient's.
pub fn waitlist_promoted(recipient: &str, event: &EventRow) -> NewMail {
    NewMail {
        recipient: recipient.to_string(),
        subject: format!("You have a place: {}", event.name),
        body: format!(
            "A place came free at \"{name}\" on {date} and it is yours: \
             your answer is now Going.\n\nIf you cannot come, answer Not Going so that \
             the next person on the waitlist gets it.\n\n{r}",
            name = event.name,
            date = event.date,
            r = event_ref(event),
        ),
    }
}

/// A reminder to someone Going, `offset_seconds` before the start (or later, if rally
/// was down when it fell due).
pub fn reminder(recipient: &str, event: &EventRow, offset_seconds: i64) -> NewMail {
    let starts = match event.starts_at {
        Some(t) => crate::events::fields::local_time(t, event.timezone.as_deref()),
        None => event.date.to_string(),
    };
    let mut body = format!(
        "A reminder: you are going to \"{name}\".\n\nStarts: {starts}\n",
        name = event.name,
    );
    if !event.location.is_empty() {
        body.push_str(&format!("Location: {}\n", event.location));
    }
    if let Some(url) = &event.online_url {
        body.push_str(&format!("Online: {url}\n"));
    }
    body.push('\n');
    body.push_str(&event_ref(event));
    NewMail {
        recipient: recipient.to_string(),
        subject: format!(
            "Reminder: {} starts in {}",
            event.name,
            crate::reminders::duration::describe(offset_seconds)
        ),
        body,
    }
}

/// The one mail each attendee gets for a save that changed what they plan around
/// (`fields::important_changes`), old → new. A cancellation says so in its subject.
pub fn event_changed(recipient: &str, event: &EventRow, changes: &[Change]) -> NewMail {
    let cancelled = changes
        .iter()
        .any(|c| c.field == "status" && c.new == crate::events::types::CANCELLED);
    let mut body = if cancelled {
        format!("\"{}\" has been cancelled.\n\n", event.name)
    } else {
        format!("\"{}\" has changed.\n\n", event.name)
    };
    for c in changes {
        body.push_str(&format!("{}: {} -> {}\n", c.field, c.old, c.new));
    }
    body.push('\n');
    body.push_str(&event_ref(event));
    NewMail {
        recipient: recipient.to_string(),
        subject: if cancelled {
            format!("Cancelled: {}", event.name)
        } else {
            format!("Changed: {}", event.name)
        },
        body,
    }
}

/// A password reset link for `username`; the token alone works too, for clients that
/// build their own page.
pub fn password_reset(
    recipient: &str,
    username: &str,
    link: Option<String>,
    token: &str,
    valid_for: &str,
) -> NewMail {
    let open = open_line(link, "To choose a new password, open");
    NewMail {
        recipient: recipient.to_string(),
        subject: "Reset your password".into(),
        body: format!(
            "Someone asked to reset the password of the rally account \"{username}\".\n\n\
             {open}Send this token with your new password to \
             POST /api/users/password_reset/confirm/:\n{token}\n\n\
             It works once, for {valid_for}. If you did not ask for it, ignore this \
             mail: your password stays as it is.\n"
        ),
    }
}

/// "<lead>:\n<link>\n\nOr: " when there is a link to open, else nothing.
fn open_line(link: Option<String>, lead: &str) -> String {
    link.map(|l| format!("{lead}:\n{l}\n\nOr: "))
        .unwrap_or_default()
}

/// A link that proves `username` reads mail at `recipient`.
pub fn email_verification(
    recipient: &str,
    username: &str,
    link: Option<String>,
    token: &str,
    valid_for: &str,
) -> NewMail {
    let open = open_line(link, "To confirm, open");
    NewMail {
        recipient: recipient.to_string(),
        subject: "Confirm your email address".into(),
        body: format!(
            "Please confirm that this address belongs to the rally account \"{username}\".\n\n\
             {open}Send this token to POST /api/users/verify_email/confirm/:\n{token}\n\n\
             It works once, for {valid_for}.\n"
        ),
    }
}

/// Builds the message: UTF-8 plain text, the subject encoded per RFC 2047 when it is
/// not ASCII, and the outbox row's own Message-ID, so a resend is recognisably the same.
pub fn build(
    from: &Mailbox,
    recipient: &str,
    subject: &str,
    body: &str,
    message_id: &str,
) -> Result<Message, String> {
    let to: Mailbox = recipient
        .parse()
        .map_err(|e| format!("bad recipient {recipient:?}: {e}"))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(message_id.to_string()))
        .header(ContentType::TEXT_PLAIN)
        .body(body.to_string())
        .map_err(|e| format!("cannot build message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_is_encoded() {
        let mail = event_created(
            "ada@example.com",
            "Café 🎉 Ünïcode",
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            "0b6f",
        );
        let from: Mailbox = "rally@localhost".parse().unwrap();
        let msg = build(&from, &mail.recipient, "Café 🎉", &mail.body, "<x@rally>").unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(raw.contains("Subject: =?utf-8?b?"), "{raw}");
        assert!(raw.contains("Message-ID: <x@rally>"), "{raw}");
        assert!(raw.is_ascii(), "the wire form must be 7-bit clean: {raw}");
    }
}
