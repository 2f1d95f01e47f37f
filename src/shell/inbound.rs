//! Reply-by-email voting: a small SMTP listener for replies to ballot mail.
//!
//! Ballot mail carries `Reply-To: ballot+TOKEN@DOMAIN`. This listener accepts mail only for
//! such addresses whose token verifies, reads the first word of the reply (English, French
//! or Arabic; quoted lines ignored) and records it as the member's vote, which sends the
//! usual receipt. A reply it cannot read gets a mail explaining how to vote, and changes
//! nothing. Every session and message is bounded in size and time.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::engine::{Event, Rejection};
use crate::mail::{self, Mail, Recipient};
use crate::token::BallotRef;
use crate::writer::WriteError;

/// Largest message accepted (a reply with some quoted text).
const MAX_MESSAGE: usize = 256 * 1024;
/// Longest command line.
const MAX_LINE: usize = 2_048;
/// A session that says nothing for this long is closed.
const IDLE: Duration = Duration::from_secs(60);
/// What the reply listener needs of the daemon: its own share, not the HTTP layer's.
pub struct Replies {
    /// The domain of reply addresses, `ballot+TOKEN@DOMAIN`.
    pub domain: String,
    pub key: crate::token::Key,
    pub items: Arc<crate::writer::Items>,
    pub writer: crate::writer::Handle,
    pub defs: Arc<arc_swap::ArcSwap<crate::definition::Definitions>>,
    pub roster: Arc<crate::roster::Roster>,
    pub tz: chrono_tz::Tz,
    pub clock: crate::clock::Clock,
    pub limits: Arc<crate::limits::Limits>,
}

/// Most recipients of one message.
const MAX_RECIPIENTS: usize = 10;

pub async fn run(app: Arc<Replies>, listener: TcpListener, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let app = app.clone();
                tokio::spawn(async move {
                    if let Err(e) = session(&app, stream).await {
                        tracing::debug!(%peer, error = %e, "inbound SMTP session ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "inbound SMTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one line (CRLF or LF), bounded; `None` at end of stream.
async fn line(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<String>> {
    buf.clear();
    let n = tokio::time::timeout(
        IDLE,
        (&mut *reader)
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', buf),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(
        String::from_utf8_lossy(buf)
            .trim_end_matches(['\r', '\n'])
            .to_string(),
    ))
}

async fn session(app: &Replies, stream: TcpStream) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut buf = Vec::new();
    let host = app.domain.clone();
    write
        .write_all(format!("220 {host} councild ballot replies\r\n").as_bytes())
        .await?;
    let mut ballots: Vec<BallotRef> = Vec::new();
    let mut from = None::<String>;
    while let Some(command) = line(&mut reader, &mut buf).await? {
        let upper = command.to_ascii_uppercase();
        let answer = if upper.starts_with("EHLO") {
            format!("250-{host}\r\n250-SIZE {MAX_MESSAGE}\r\n250 8BITMIME\r\n")
        } else if upper.starts_with("HELO") {
            format!("250 {host}\r\n")
        } else if upper.starts_with("MAIL FROM:") {
            from = Some(address(&command["MAIL FROM:".len()..]));
            ballots.clear();
            "250 OK\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            match ballot_address(app, &address(&command["RCPT TO:".len()..])) {
                _ if from.is_none() => "503 MAIL FROM first\r\n".into(),
                _ if ballots.len() >= MAX_RECIPIENTS => "452 too many recipients\r\n".into(),
                Some(r) => {
                    ballots.push(r);
                    "250 OK\r\n".into()
                }
                None => "550 no such ballot address\r\n".into(),
            }
        } else if upper == "DATA" {
            if ballots.is_empty() {
                "503 RCPT TO first\r\n".into()
            } else {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let message = match read_data(&mut reader, &mut buf).await? {
                    Some(m) => m,
                    None => {
                        write.write_all(b"552 message too large\r\n").await?;
                        continue;
                    }
                };
                let mut answer = "250 OK: reply read\r\n".to_string();
                for r in std::mem::take(&mut ballots) {
                    if let Err(e) = handle(app, &r, &message).await {
                        tracing::warn!(item = %r.item, error = %e, "a ballot reply could not be handled");
                        answer = "451 try again later\r\n".into();
                    }
                }
                from = None;
                answer
            }
        } else if upper == "RSET" {
            ballots.clear();
            from = None;
            "250 OK\r\n".into()
        } else if upper == "NOOP" {
            "250 OK\r\n".into()
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            "502 command not implemented\r\n".into()
        };
        write.write_all(answer.as_bytes()).await?;
    }
    Ok(())
}

/// The message after DATA, unstuffed; `None` when it is too large (it is read to its end).
async fn read_data(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut message = Vec::new();
    let mut too_large = false;
    loop {
        let Some(l) = line(reader, buf).await? else {
            return Ok(None);
        };
        if l == "." {
            return Ok((!too_large).then_some(message));
        }
        let l = l.strip_prefix('.').unwrap_or(&l);
        if message.len() + l.len() > MAX_MESSAGE {
            too_large = true;
            continue;
        }
        message.extend_from_slice(l.as_bytes());
        message.extend_from_slice(b"\r\n");
    }
}

/// `<a@b>` or `a@b` with SMTP parameters, to a bare address.
fn address(arg: &str) -> String {
    let arg = arg.trim();
    let inner = arg
        .strip_prefix('<')
        .and_then(|a| a.split_once('>'))
        .map_or(arg.split_whitespace().next().unwrap_or(""), |(a, _)| a);
    inner.trim().to_string()
}

/// The ballot behind `ballot+TOKEN@DOMAIN`, if the token verifies.
fn ballot_address(app: &Replies, address: &str) -> Option<BallotRef> {
    let (local, domain) = address.rsplit_once('@')?;
    if !domain.eq_ignore_ascii_case(&app.domain) {
        return None;
    }
    app.key.verify(local.strip_prefix("ballot+")?)
}

/// What a reply says: the ballot choice its first word names, if any.
pub fn read_choice(text: &str, choices: &[String]) -> Option<String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('>'))?;
    let word: String = line
        .split_whitespace()
        .next()?
        .chars()
        .filter_map(plain_arabic)
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
        .collect::<String>()
        .to_lowercase();
    let meant = match word.as_str() {
        "yes" | "oui" | "نعم" | "y" => "yes",
        "no" | "non" | "لا" | "n" => "no",
        "abstain" | "abstention" | "abstentions" | "امتناع" | "امتنع" => "abstain",
        other => other,
    };
    choices
        .iter()
        .find(|c| c.eq_ignore_ascii_case(meant))
        .cloned()
}

/// Arabic as it is typed in a reply, reduced to its letters: vowel marks and other
/// diacritics (which `char::is_alphanumeric` counts as letters) and the tatweel dropped,
/// the alef with hamza or madda read as alef. `نَعَم` is `نعم`, `أمتنع` is `امتنع`.
fn plain_arabic(c: char) -> Option<char> {
    match c {
        '\u{0610}'..='\u{061A}'
        | '\u{0640}'
        | '\u{064B}'..='\u{065F}'
        | '\u{0670}'
        | '\u{06D6}'..='\u{06ED}' => None,
        'أ' | 'إ' | 'آ' | 'ٱ' => Some('ا'),
        c => Some(c),
    }
}

async fn handle(app: &Replies, r: &BallotRef, raw: &[u8]) -> Result<(), WriteError> {
    let Some(item) = app.items.get(&r.item) else {
        return Ok(());
    };
    let Some(ballot) = item.ballots.get(r.ballot) else {
        return Ok(());
    };
    let Some(voter) = ballot
        .electorate
        .iter()
        .find(|v| v.member == r.member && v.delegate == r.delegate)
    else {
        return Ok(());
    };
    let text = mail_parser::MessageParser::default()
        .parse(raw)
        .and_then(|m| m.body_text(0).map(|b| b.into_owned()))
        .unwrap_or_default();
    if let Some(choice) = read_choice(&text, &ballot.choices) {
        let event = Event::VoteCast {
            ballot: r.ballot,
            member: r.member.clone(),
            choice: choice.clone(),
        };
        match app.writer.event(r.item.clone(), event).await {
            Ok(done) => {
                tracing::info!(item = %r.item, member = %r.member, %choice, receipt = %done.hash, "vote recorded from a mail reply");
                return Ok(());
            }
            // A repeat: its receipt went out with the vote it repeats.
            Err(WriteError::Rejected(Rejection::SameChoice)) => return Ok(()),
            Err(WriteError::Rejected(Rejection::BallotClosed | Rejection::Ended)) => {}
            Err(e @ (WriteError::Store(_) | WriteError::Closed)) => return Err(e),
            Err(e) => tracing::info!(item = %r.item, error = %e, "a mail reply was refused"),
        }
    }
    // Unreadable, or too late: say how to vote; nothing changed. Once an hour at most, so
    // that replies sent again and again (or an auto-responder) cannot multiply mail.
    if !app.limits.notice_allowed(r) {
        tracing::info!(item = %r.item, member = %r.member, "a mail reply was not understood; already told within the hour");
        return Ok(());
    }
    let defs = app.defs.load();
    let title = defs
        .version(&item.version)
        .map_or(item.workflow.as_str(), |w| w.title.as_str());
    let context = mail::context(&app.roster.council, title, &item, Some(r.ballot), app.tz);
    let now = app.clock.now();
    let id = format!(
        "{}.reply.{}",
        item.id,
        now.timestamp_nanos_opt().unwrap_or_default()
    );
    let mail = Mail::new(
        id,
        &item.id,
        "reply-not-understood",
        Recipient::voter(voter),
        Some(r.ballot),
        context,
        now,
    );
    tracing::info!(item = %r.item, member = %r.member, "a mail reply could not be read as a vote");
    app.writer.mail(mail).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_word_of_a_reply_is_the_vote() {
        let choices: Vec<String> = ["yes", "no", "abstain"].map(String::from).to_vec();
        let read = |t: &str| read_choice(t, &choices);
        assert_eq!(
            read("Yes\n\nOn Monday the Secretariat wrote:\n> ballot"),
            Some("yes".into())
        );
        assert_eq!(
            read("> quoted first\n\n  Oui, bien sûr"),
            Some("yes".into())
        );
        assert_eq!(read("NON."), Some("no".into()));
        assert_eq!(read("نعم"), Some("yes".into()));
        assert_eq!(read("امتناع"), Some("abstain".into()));
        // As typed with vowel marks, a tatweel, or a hamza on the alef.
        assert_eq!(read("نَعَم"), Some("yes".into()));
        assert_eq!(read("لَا"), Some("no".into()));
        assert_eq!(read("نعـــم"), Some("yes".into()));
        assert_eq!(read("أمتنع"), Some("abstain".into()));
        assert_eq!(read("إمْتِنَاع"), Some("abstain".into()));
        assert_eq!(read("Abstention"), Some("abstain".into()));
        assert_eq!(read("maybe later"), None);
        assert_eq!(read(""), None);
        assert_eq!(read("> only quotes"), None);
    }

    #[test]
    fn addresses_are_read_from_smtp_arguments() {
        assert_eq!(
            address("<ballot+abc@example.org> SIZE=100"),
            "ballot+abc@example.org"
        );
        assert_eq!(address(" ballot+abc@example.org"), "ballot+abc@example.org");
        assert_eq!(address("<>"), "");
    }
}
