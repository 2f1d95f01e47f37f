//! Reply-by-email voting: a small SMTP listener for replies to ballot mail.
//!
//! Ballot mail carries `Reply-To: ballot+TOKEN@DOMAIN`. This listener accepts mail only for
//! such addresses whose token verifies, reads the first word of the reply (English, French
//! or Arabic; quoted lines ignored) and records it as the member's vote, which sends the
//! usual receipt. A reply it cannot read gets a mail explaining how to vote, and changes
//! nothing. Every session and message is bounded in size and time.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::engine::{Event, Rejection};
use crate::listen::Gate;
use crate::mail::{self, Mail, Recipient};
use crate::token::BallotRef;
use crate::writer::WriteError;

/// Largest message accepted (a reply with some quoted text).
const MAX_MESSAGE: usize = 256 * 1024;
/// Longest line, command or text, its CRLF included (RFC 5321, 4.5.3.1.4 and 4.5.3.1.6).
const MAX_LINE: usize = 1_000;
/// A session that says nothing for this long is closed.
const IDLE: Duration = Duration::from_secs(60);
/// Longest time to send one message, from `DATA` to its final `.`.
const MESSAGE_TIME: Duration = Duration::from_secs(5 * 60);
/// Longest session, however busy: a client that keeps one open for ever with `NOOP`s
/// would hold a place under the listener's cap for ever.
const SESSION_TIME: Duration = Duration::from_secs(15 * 60);
/// What the reply listener needs of the daemon: its own share, not the HTTP layer's.
pub struct Replies {
    /// The domain of reply addresses, `ballot+TOKEN@DOMAIN`.
    pub domain: String,
    pub key: crate::token::Key,
    pub items: Arc<crate::writer::Items>,
    pub writer: crate::writer::Handle,
    pub defs: Arc<arc_swap::ArcSwap<crate::definition::Definitions>>,
    pub roster: crate::writer::SharedRoster,
    pub tz: chrono_tz::Tz,
    pub clock: crate::clock::Clock,
    pub limits: Arc<crate::limits::Limits>,
    /// Offered with STARTTLS when a certificate is configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// The STARTTLS set-up from a PEM certificate chain and its private key.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("inbound.tls_cert {}: {e}", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "inbound.tls_cert {}: no certificate",
        cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("inbound.tls_key {}: {e}", key.display()))?;
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
    .map_err(|e| anyhow::anyhow!("inbound TLS certificate and key: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Most recipients of one message.
const MAX_RECIPIENTS: usize = 10;

/// Takes sessions on `listener` until `stop`, each under `gate`'s cap and [`SESSION_TIME`].
pub async fn run(
    app: Arc<Replies>,
    listener: TcpListener,
    gate: Arc<Gate>,
    stop: CancellationToken,
) {
    loop {
        let (stream, peer, slot) = tokio::select! {
            accepted = crate::listen::accept(&listener, &gate) => accepted,
            _ = stop.cancelled() => return,
        };
        let app = app.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(SESSION_TIME, session(&app, stream)).await {
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "inbound SMTP session ended"),
                Err(_) => tracing::debug!(%peer, "inbound SMTP session closed: too long"),
                Ok(Ok(())) => {}
            }
            drop(slot);
        });
    }
}

/// Either side of STARTTLS: the TCP stream, then the TLS stream over it.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for S {}

type Reader<S> = BufReader<S>;

/// One line as read.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// Ended by CRLF, which is not kept.
    Crlf(Vec<u8>),
    /// Ended by a bare LF: never a line end for SMTP (that is how messages are smuggled).
    BareLf,
    /// Longer than [`MAX_LINE`]; it was read to its end (CRLF or not) and dropped.
    TooLong { crlf: bool },
    /// The client closed the connection (perhaps in the middle of a line).
    End,
}

/// Reads one line, waiting at most [`IDLE`] and never past `deadline`.
async fn line<S: Stream>(
    reader: &mut Reader<S>,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> std::io::Result<Line> {
    let deadline = deadline.min(Instant::now() + IDLE);
    let n = piece(reader, buf, deadline).await?;
    if n == 0 {
        return Ok(Line::End);
    }
    if let Some(text) = buf.strip_suffix(b"\r\n") {
        return Ok(Line::Crlf(text.to_vec()));
    }
    if buf.ends_with(b"\n") {
        return Ok(Line::BareLf);
    }
    if n < MAX_LINE {
        return Ok(Line::End);
    }
    // Drop the rest of the long line, a piece at a time, so none of it is read as a line.
    loop {
        if piece(reader, buf, deadline).await? == 0 {
            return Ok(Line::End);
        }
        if buf.ends_with(b"\n") {
            return Ok(Line::TooLong {
                crlf: buf.ends_with(b"\r\n"),
            });
        }
    }
}

/// Reads into `buf` (cleared first) up to and with the next LF, at most [`MAX_LINE`]
/// bytes, before `deadline`; how many bytes it read, 0 at the end of the stream.
async fn piece<S: Stream>(
    reader: &mut Reader<S>,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> std::io::Result<usize> {
    buf.clear();
    let mut bounded = (&mut *reader).take(MAX_LINE as u64);
    match tokio::time::timeout_at(deadline, bounded.read_until(b'\n', buf)).await {
        Ok(read) => read,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "idle")),
    }
}

/// One SMTP session on `stream`, from the greeting to QUIT or the end of the stream (a TCP
/// connection in the daemon; any byte stream in the fuzz harness).
pub async fn session<S>(app: &Replies, stream: S) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let mut reader = BufReader::new(stream);
    let host = &app.domain;
    reader
        .get_mut()
        .write_all(format!("220 {host} councild ballot replies\r\n").as_bytes())
        .await?;
    let forever = Instant::now() + SESSION_TIME;
    let Some(tcp) = converse(app, reader, app.tls.is_some(), forever).await? else {
        return Ok(());
    };
    let Some(tls) = &app.tls else { return Ok(()) };
    // RFC 3207: the session starts anew over TLS; nothing said before it counts.
    let reader = BufReader::new(tls.accept(tcp).await?);
    converse(app, reader, false, forever).await?;
    Ok(())
}

/// Commands until QUIT or the end of the stream (`None`), or until STARTTLS is accepted:
/// then the stream, for the TLS handshake. `starttls` says whether it is offered.
async fn converse<S: Stream>(
    app: &Replies,
    mut reader: Reader<S>,
    starttls: bool,
    forever: Instant,
) -> std::io::Result<Option<S>> {
    let mut buf = Vec::new();
    let host = app.domain.clone();
    let mut ballots: Vec<BallotRef> = Vec::new();
    let mut from = None::<String>;
    loop {
        let command = match line(&mut reader, &mut buf, forever).await? {
            Line::Crlf(text) => String::from_utf8_lossy(&text).into_owned(),
            Line::End => return Ok(None),
            refused @ (Line::BareLf | Line::TooLong { .. }) => {
                ballots.clear();
                from = None;
                reader
                    .get_mut()
                    .write_all(refusal(&refused).as_bytes())
                    .await?;
                continue;
            }
        };
        let upper = command.to_ascii_uppercase();
        let answer = if upper.starts_with("EHLO") {
            let tls = if starttls { "250-STARTTLS\r\n" } else { "" };
            format!("250-{host}\r\n{tls}250-SIZE {MAX_MESSAGE}\r\n250 8BITMIME\r\n")
        } else if upper == "STARTTLS" && starttls {
            // Commands sent in the same packet as STARTTLS would run inside TLS as if the
            // client had sent them there (the STARTTLS injection of CVE-2011-0411).
            if !reader.buffer().is_empty() {
                reader
                    .get_mut()
                    .write_all(b"501 nothing may follow STARTTLS\r\n")
                    .await?;
                return Ok(None);
            }
            reader
                .get_mut()
                .write_all(b"220 ready to start TLS\r\n")
                .await?;
            return Ok(Some(reader.into_inner()));
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
                reader
                    .get_mut()
                    .write_all(b"354 end with <CRLF>.<CRLF>\r\n")
                    .await?;
                let data = read_data(&mut reader, &mut buf).await?;
                let ballots = std::mem::take(&mut ballots);
                from = None;
                match data {
                    Data::Message(message) => {
                        let mut answer = "250 OK: reply read\r\n".to_string();
                        for r in ballots {
                            if let Err(e) = handle(app, &r, &message).await {
                                tracing::warn!(item = %r.item, error = %e, "a ballot reply could not be handled");
                                answer = "451 try again later\r\n".into();
                            }
                        }
                        answer
                    }
                    Data::Refused(why) => why.into(),
                    Data::Cut => return Ok(None),
                }
            }
        } else if upper == "RSET" {
            ballots.clear();
            from = None;
            "250 OK\r\n".into()
        } else if upper == "NOOP" {
            "250 OK\r\n".into()
        } else if upper == "QUIT" {
            reader.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(None);
        } else {
            "502 command not implemented\r\n".into()
        };
        reader.get_mut().write_all(answer.as_bytes()).await?;
    }
}

/// The answer to a line that is not one; the transaction is reset.
fn refusal(line: &Line) -> &'static str {
    match line {
        Line::TooLong { .. } => "500 5.5.2 line too long\r\n",
        _ => "500 5.5.2 bare LF: lines end with CRLF\r\n",
    }
}

/// What came after `DATA`.
#[derive(Debug, PartialEq, Eq)]
enum Data {
    /// The message, unstuffed, its lines ending in CRLF.
    Message(Vec<u8>),
    /// Read to its end, and refused with this answer.
    Refused(&'static str),
    /// The client closed the connection, or took too long, before the end.
    Cut,
}

/// Reads the message after DATA to its end, `CRLF . CRLF` and nothing else: a bare LF
/// never ends a line, so `LF . LF` or `LF . CRLF` in a message stays inside it, and the
/// text after it is never read as commands. A message with a bare LF, a line over
/// [`MAX_LINE`] or more than [`MAX_MESSAGE`] is read to its end all the same, and refused.
async fn read_data<S: Stream>(reader: &mut Reader<S>, buf: &mut Vec<u8>) -> std::io::Result<Data> {
    let deadline = Instant::now() + MESSAGE_TIME;
    let mut message = Vec::new();
    let mut refused = None;
    // Whether the last line ended with CRLF (the DATA command's own did).
    let mut after_crlf = true;
    loop {
        let text = match line(reader, buf, deadline).await {
            Ok(Line::Crlf(text)) => text,
            Ok(Line::End) => return Ok(Data::Cut),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Ok(Data::Cut),
            Err(e) => return Err(e),
            Ok(other) => {
                refused.get_or_insert(refusal(&other));
                after_crlf = other == Line::TooLong { crlf: true };
                continue;
            }
        };
        if text == b"." && after_crlf {
            return Ok(match refused {
                Some(why) => Data::Refused(why),
                None => Data::Message(message),
            });
        }
        after_crlf = true;
        let text = text.strip_prefix(b".").unwrap_or(&text);
        if message.len() + text.len() + 2 > MAX_MESSAGE {
            refused.get_or_insert("552 5.3.4 message too large\r\n");
            continue;
        }
        message.extend_from_slice(text);
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

/// What a reply says: the ballot choice its first words name (the choice's id, one of its
/// labels in any language, or the usual words for yes, no and abstain), if any.
pub fn read_choice(
    text: &str,
    choices: &[String],
    labels: &BTreeMap<String, crate::definition::Texts>,
) -> Option<String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('>'))?;
    // Words, and the marks that end a phrase as words of their own: "No, objection noted"
    // does not read as the label "No objection".
    const MARKS: &str = ",.;:!?،؛؟";
    // One Unicode form for both sides: `ö` typed as `o` and a combining diaeresis is `ö`.
    let nfc = icu_normalizer::ComposingNormalizerBorrowed::new_nfc();
    let words = |s: &str| -> Vec<String> {
        let spaced: String = nfc
            .normalize(s)
            .chars()
            .flat_map(|c| match MARKS.contains(c) {
                true => vec![' ', c, ' '],
                false => vec![c],
            })
            .collect();
        spaced
            .split_whitespace()
            .map(|w| match w.chars().next().filter(|c| MARKS.contains(*c)) {
                Some(_) => w.to_string(),
                None => w
                    .chars()
                    .filter_map(plain_arabic)
                    .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
                    .collect::<String>()
                    .to_lowercase(),
            })
            .filter(|w| !w.is_empty())
            .collect()
    };
    let said = words(line);
    // The longest label the reply starts with: `لا اعتراض` (no objection) before `لا` (no).
    let labelled = labels
        .iter()
        .flat_map(|(id, t)| {
            t.by_language
                .values()
                .chain([&t.default])
                .map(move |label| (id, words(label)))
        })
        .filter(|(_, label)| !label.is_empty() && said.starts_with(label))
        .max_by_key(|(_, label)| label.len());
    if let Some((id, _)) = labelled {
        return choices.iter().find(|c| *c == id).cloned();
    }
    let word = said
        .iter()
        .find(|w| !w.chars().all(|c| MARKS.contains(c)))?
        .clone();
    let meant = match word.as_str() {
        "yes" | "oui" | "نعم" | "y" => "yes",
        "no" | "non" | "لا" | "n" => "no",
        "abstain" | "abstention" | "abstentions" | "امتناع" | "امتنع" => "abstain",
        other => other,
    };
    // An id read as the reply's words are (`Öztürk` is the choice `öztürk`).
    choices.iter().find(|c| words(c) == [meant]).cloned()
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
    let labels = app
        .defs
        .load()
        .version(&item.version)
        .and_then(|w| w.ballot(&ballot.stage))
        .map(|s| s.labels.clone())
        .unwrap_or_default();
    // An election: a reply may name a candidate as the ballot does.
    let mut labels = labels;
    for c in &item.candidates {
        let texts = crate::definition::Texts {
            default: c.name_in("en").to_string(),
            by_language: c.name.clone(),
        };
        labels.insert(c.id.clone(), texts);
    }
    if let Some(choice) = read_choice(&text, &ballot.choices, &labels) {
        let event = Event::VoteCast {
            ballot: r.ballot,
            member: r.member.clone(),
            choice: choice.clone(),
            proofs: None,
        };
        match app.writer.event(r.item.clone(), event, None).await {
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
    let context = mail::context(
        &app.roster.load().council,
        defs.version(&item.version).map(|w| &**w),
        &item,
        Some(r.ballot),
        app.tz,
    );
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
    fn a_reply_may_give_a_label_in_any_language() {
        let choices: Vec<String> = ["yes", "no", "no_objection"].map(String::from).to_vec();
        let mut label = crate::definition::Texts::one("No objection");
        label.by_language.insert("ar".into(), "لا اعتراض".into());
        label
            .by_language
            .insert("fr".into(), "Pas d'objection".into());
        let mut no = crate::definition::Texts::one("No");
        no.by_language.insert("ar".into(), "لا".into());
        let labels = BTreeMap::from([("no".to_string(), no), ("no_objection".to_string(), label)]);
        let read = |t: &str| read_choice(t, &choices, &labels);
        assert_eq!(read("No objection."), Some("no_objection".into()));
        assert_eq!(read("لا اعتراض\n> quoted"), Some("no_objection".into()));
        assert_eq!(read("pas d'objection, merci"), Some("no_objection".into()));
        assert_eq!(
            read("لا"),
            Some("no".into()),
            "one word is still the usual no"
        );
        assert_eq!(read("No"), Some("no".into()));
        assert_eq!(
            read("No, objection noted."),
            Some("no".into()),
            "the comma ends it"
        );
        assert_eq!(
            read("\u{2068}no_objection\u{2069}"),
            Some("no_objection".into())
        );
    }

    #[test]
    fn a_reply_names_a_choice_whatever_its_unicode_form_and_case() {
        let choices: Vec<String> = ["al_farsi", "öztürk"].map(String::from).to_vec();
        let read = |t: &str| read_choice(t, &choices, &BTreeMap::new());
        assert_eq!(read("öztürk"), Some("öztürk".into()));
        // Decomposed, as some mail programs send it, and capitalised.
        assert_eq!(read("O\u{308}ztu\u{308}rk"), Some("öztürk".into()));
        assert_eq!(read("ÖZTÜRK, please"), Some("öztürk".into()));
        assert_eq!(read("AL_FARSI"), Some("al_farsi".into()));
        assert_eq!(
            read("ozturk"),
            None,
            "a letter without its mark is another word"
        );
    }

    #[test]
    fn the_first_word_of_a_reply_is_the_vote() {
        let choices: Vec<String> = ["yes", "no", "abstain"].map(String::from).to_vec();
        let read = |t: &str| read_choice(t, &choices, &BTreeMap::new());
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
