//! What delegates receive: languages, both parts, right-to-left Arabic, links, invitations.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Council, ROSTER, until};

const SESSION: &str = r#"
workflow: quick-session
title: Extraordinary session of the Executive Council
inputs:
  place: { type: text, default: "CPCC Headquarters, Istanbul" }
start: call-for-items
stages:
  call-for-items:
    notify: { to: heads, template: call-for-agenda-items }
    after: 1s
    next: agenda
  agenda:
    notify: { to: members, template: agenda-circulated }
    after: 14d
    next: session
  session:
    end: convened
"#;

/// The six agenda mails (one per delegate), each with its invitation.
async fn agenda_mails(council: &Council) -> Vec<crate::harness::Mail> {
    until("the agenda mail", Duration::from_secs(30), async || {
        let mails: Vec<_> = council
            .mails()
            .into_iter()
            .filter(|m| m.ics.is_some())
            .collect();
        (mails.len() == 6).then_some(mails)
    })
    .await
}

#[tokio::test]
async fn the_agenda_carries_a_calendar_invitation_for_the_session() {
    let council = Council::new(ROSTER, &[("session.yaml", SESSION)]);
    let daemon = council.start();
    let id = daemon.start_item("quick-session", json!({})).await;
    let item = daemon
        .wait_item(&id, "the agenda", |i| i["stage"] == "agenda")
        .await;
    let session: chrono::DateTime<chrono::Utc> = item["timers"]["next@agenda"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let agenda = agenda_mails(&council).await;
    let english = agenda
        .iter()
        .find(|m| m.language.as_deref() == Some("en"))
        .unwrap();
    let ics = english.ics.as_deref().unwrap();
    assert!(
        ics.contains(&format!("DTSTART:{}", session.format("%Y%m%dT%H%M%SZ"))),
        "{ics}"
    );
    assert!(
        ics.contains("LOCATION:CPCC Headquarters, Istanbul"),
        "{ics}"
    );
    assert!(ics.contains("\r\n"), "iCalendar lines end in CRLF");
    assert!(
        english.raw.contains("method=REQUEST"),
        "an invitation, not a plain attachment"
    );
    assert!(english.body.contains("CPCC Headquarters, Istanbul"));
    assert!(
        english.reply_to.is_none(),
        "no reply address without the inbound listener"
    );
}

/// Sends a reply through SMTP to the daemon's inbound listener.
async fn reply(port: u16, to: &str, body: &str) -> Result<(), String> {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let message = Message::builder()
        .from("A. Head <aaa.head@example.org>".parse().unwrap())
        .to(to.parse().unwrap())
        .subject("Re: ballot")
        .body(body.to_string())
        .unwrap();
    let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .build();
    smtp.send(message)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_delegate_votes_by_replying_to_the_ballot_mail() {
    let council = Council::new(ROSTER, &[("quick.yaml", crate::cycle::QUICK)]);
    let port = crate::harness::free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon =
        crate::harness::Daemon::start(council.path(), &[("COUNCILD_INBOUND_LISTEN", &listen)]);
    let id = daemon
        .start_item(
            "quick-adoption",
            json!({"title": "Regulation on liaison officers"}),
        )
        .await;
    let ballot = council.ballot_mail("aaa.head@").await;
    let address = ballot
        .reply_address()
        .expect("ballot mail says where to reply");
    assert!(
        address.starts_with("ballot+") && address.ends_with("@example.org"),
        "{address}"
    );
    assert!(
        ballot.body.contains("replying to this mail"),
        "{}",
        ballot.body
    );

    // A first word the ballot does not know: a polite mail back, and no vote.
    reply(port, &address, "Maybe later.\n\n> Adopt?")
        .await
        .unwrap();
    let what = "an answer to the unreadable reply";
    let answer = until(what, Duration::from_secs(30), async || {
        council
            .mails()
            .into_iter()
            .find(|m| m.message_id.contains(".reply."))
    })
    .await;
    assert!(
        answer.to.contains("aaa.head@") && answer.body.contains("could not be read as a vote"),
        "{}",
        answer.body
    );
    // It names the words this ballot understands, which are its own choices.
    assert!(
        answer
            .body
            .contains("one of\r\nthese words on the first line: yes, no, abstain.")
            || answer
                .body
                .contains("one of\nthese words on the first line: yes, no, abstain."),
        "{}",
        answer.body
    );
    assert_eq!(daemon.item(&id).await["ballots"][0]["cast"], 0);
    // The same reply again and again (an auto-responder, a loop) is answered once an hour
    // at most: no mail multiplied.
    for _ in 0..5 {
        reply(port, &address, "Maybe later.\n\n> Adopt?")
            .await
            .unwrap();
    }
    daemon.wait_outbox_empty().await;
    let answers = council
        .mails()
        .into_iter()
        .filter(|m| m.message_id.contains(".reply."))
        .count();
    assert_eq!(answers, 1, "one answer for six unreadable replies");

    // "Oui" on the first line, the quoted ballot below: a yes, confirmed with a receipt.
    reply(
        port,
        &address,
        "Oui, nous approuvons.\n\nLe Secrétariat a écrit :\n> Adopt?",
    )
    .await
    .unwrap();
    let item = daemon
        .wait_item(&id, "the mailed vote", |i| i["ballots"][0]["cast"] == 1)
        .await;
    assert_eq!(item["ballots"][0]["counts"]["yes"], 1);
    until(
        "a receipt for the mailed vote",
        Duration::from_secs(30),
        async || {
            council
                .mails()
                .iter()
                .any(|m| m.to.contains("aaa.head@") && m.body.contains("is recorded as: yes"))
        },
    )
    .await;
    // The same vote by mail again changes nothing and sends nothing.
    let events = daemon.item(&id).await["events"].as_array().unwrap().len();
    reply(port, &address, "Oui").await.unwrap();
    reply(port, &address, "Maybe").await.unwrap();
    daemon.wait_outbox_empty().await;
    assert_eq!(
        daemon.item(&id).await["events"].as_array().unwrap().len(),
        events
    );
    let receipts = council
        .mails()
        .into_iter()
        .filter(|m| m.to.contains("aaa.head@") && m.body.contains("is recorded as: yes"))
        .count();
    assert_eq!(receipts, 1);

    // A forged or foreign address is refused at RCPT, and changes nothing.
    let err = reply(port, "ballot+forged.token@example.org", "yes")
        .await
        .unwrap_err();
    assert!(err.contains("550"), "{err}");
    let err = reply(port, "someone@example.org", "yes").await.unwrap_err();
    assert!(err.contains("550"), "{err}");
    assert_eq!(daemon.item(&id).await["ballots"][0]["cast"], 1);
}

#[tokio::test]
async fn mail_is_dkim_signed_when_a_key_is_configured() {
    use base64::Engine as _;
    let council = Council::new(ROSTER, &[("quick.yaml", crate::cycle::QUICK)]);
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    std::fs::write(council.path().join("dkim.key"), format!("{key}\n")).unwrap();
    let daemon = crate::harness::Daemon::start(
        council.path(),
        &[
            ("COUNCILD_MAIL_DKIM_KEY", "dkim.key"),
            ("COUNCILD_MAIL_DKIM_SELECTOR", "council2026"),
        ],
    );
    daemon
        .start_item("quick-adoption", json!({"title": "Signed"}))
        .await;
    until("a mail", Duration::from_secs(30), async || {
        !council.mails().is_empty()
    })
    .await;
    let raw = &council.mails()[0].raw;
    let signature = raw
        .lines()
        .find(|l| l.starts_with("DKIM-Signature:"))
        .unwrap_or_else(|| panic!("unsigned: {raw}"));
    assert!(
        signature.contains("a=ed25519-sha256")
            && signature.contains("d=example.org")
            && signature.contains("s=council2026"),
        "{signature}"
    );
}

/// With a certificate configured, the inbound listener offers STARTTLS: a reply sent over
/// TLS votes, and commands pipelined behind STARTTLS (to run inside TLS as if the client
/// had sent them there) end the session instead.
#[tokio::test]
async fn replies_can_come_over_starttls_and_nothing_rides_in_with_it() {
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let council = Council::new(ROSTER, &[("quick.yaml", crate::cycle::QUICK)]);
    let (cert, key) = (
        council.path().join("cert.pem"),
        council.path().join("key.pem"),
    );
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    let port = crate::harness::free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = crate::harness::Daemon::start(
        council.path(),
        &[
            ("COUNCILD_INBOUND_LISTEN", &listen),
            ("COUNCILD_INBOUND_TLS_CERT", cert.to_str().unwrap()),
            ("COUNCILD_INBOUND_TLS_KEY", key.to_str().unwrap()),
        ],
    );
    let id = daemon
        .start_item(
            "quick-adoption",
            json!({"title": "Regulation voted over TLS"}),
        )
        .await;
    let ballot = council.ballot_mail("aaa.head@").await;
    let address = ballot.reply_address().unwrap();

    // STARTTLS with a command behind it in the same packet: refused, the session ends.
    let mut raw = tokio::net::TcpStream::connect(&listen).await.unwrap();
    raw.write_all(b"EHLO client\r\n").await.unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("250 8BITMIME") {
        let mut chunk = [0; 512];
        let n = raw.read(&mut chunk).await.unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).contains("250-STARTTLS"));
    raw.write_all(b"STARTTLS\r\nMAIL FROM:<x@example.org>\r\n")
        .await
        .unwrap();
    let mut rest = String::new();
    raw.read_to_string(&mut rest).await.unwrap();
    assert!(rest.starts_with("501"), "{rest}");

    // A reply over TLS votes.
    let tls = TlsParameters::builder("localhost".into())
        .dangerous_accept_invalid_certs(true)
        .build()
        .unwrap();
    let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(Tls::Required(tls))
        .build();
    let message = Message::builder()
        .from("A. Head <aaa.head@example.org>".parse().unwrap())
        .to(address.parse().unwrap())
        .subject("Re: ballot")
        .body("Yes\n".to_string())
        .unwrap();
    smtp.send(message).await.unwrap();
    let item = daemon
        .wait_item(&id, "the vote sent over TLS", |i| {
            i["ballots"][0]["cast"] == 1
        })
        .await;
    assert_eq!(item["ballots"][0]["counts"]["yes"], 1);
}

/// The session's date in the agenda mail, as each delegate's language writes it: weekday
/// and month in that language, the council's offset named; nothing left in English.
#[tokio::test]
async fn each_delegate_reads_dates_in_their_language_and_arabic_mail_isolates_latin_text() {
    let council = Council::new(ROSTER, &[("session.yaml", SESSION)]);
    let daemon = council.start();
    let id = daemon.start_item("quick-session", json!({})).await;
    daemon
        .wait_item(&id, "the agenda", |i| i["stage"] == "agenda")
        .await;
    let agenda = agenda_mails(&council).await;
    let of = |language: &str| {
        agenda
            .iter()
            .find(|m| m.language.as_deref() == Some(language))
            .unwrap()
    };
    const MONTHS_EN: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const MONTHS_FR: [&str; 12] = [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ];
    const MONTHS_AR: [&str; 12] = [
        "يناير",
        "فبراير",
        "مارس",
        "أبريل",
        "مايو",
        "يونيو",
        "يوليو",
        "أغسطس",
        "سبتمبر",
        "أكتوبر",
        "نوفمبر",
        "ديسمبر",
    ];
    const DAYS_FR: [&str; 7] = [
        "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
    ];
    let visible = |s: &str| s.replace(['\u{2066}', '\u{2068}', '\u{2069}'], "");
    let english = visible(&of("en").body);
    let line = english
        .lines()
        .find(|l| l.contains("The session opens on"))
        .unwrap();
    assert!(MONTHS_EN.iter().any(|m| line.contains(m)), "{line}");
    assert!(line.contains("(UTC+03:00)"), "{line}");
    let french = visible(&of("fr").body);
    let line = french
        .lines()
        .find(|l| l.contains("La session s'ouvrira le"))
        .unwrap();
    assert!(MONTHS_FR.iter().any(|m| line.contains(m)), "{line}");
    assert!(DAYS_FR.iter().any(|d| line.contains(d)), "{line}");
    assert!(
        line.contains(" à ") && line.contains("(UTC+03:00)"),
        "{line}"
    );
    let arabic_raw = &of("ar").body;
    let arabic = visible(arabic_raw);
    assert!(MONTHS_AR.iter().any(|m| arabic.contains(m)), "{arabic}");
    assert!(
        arabic_raw.contains("\u{2066}UTC+03:00\u{2069}"),
        "the offset isolated, so it is not read 03:00+UTC: {arabic_raw:?}"
    );
    // The Latin title among Arabic words is isolated, in the text and the HTML part.
    let title = "\u{2068}Extraordinary session of the Executive Council\u{2069}";
    assert!(arabic_raw.contains(title), "{arabic_raw:?}");
    assert!(of("ar").html.as_deref().unwrap_or_default().contains(title));
    assert!(
        !of("en").body.contains('\u{2068}'),
        "a left-to-right mail needs none"
    );
    for (language, body) in [("fr", &french), ("ar", &arabic)] {
        for english_word in MONTHS_EN.iter().chain(&[
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        ]) {
            assert!(
                !body.contains(english_word),
                "{language}: {english_word} in {body}"
            );
        }
    }
}

/// A ballot given in the council's three languages: each delegate reads the question,
/// the title and the choices in their language, in the mail and on the ballot page, and
/// can reply with a choice in their words.
const TRILINGUAL: &str = r#"
workflow: trilingual
title: Trilingual ballot
inputs:
  title: { type: text, required: true }
start: vote
stages:
  vote:
    ballot:
      question:
        ar: "هل تُعتمد اللائحة «{{item.title}}»؟"
        en: "Adopt the regulation “{{item.title}}”?"
        fr: "Adopter le règlement « {{item.title}} » ?"
      choices:
        - { id: yes, label: { ar: نعم, en: "Yes", fr: Oui } }
        - { id: no, label: { ar: لا, en: "No", fr: Non } }
        - { id: no_objection, label: { ar: لا اعتراض, en: No objection, fr: Pas d'objection } }
      closes_after: 1d
      pass: "yes + no_objection > no"
    outcomes: { adopted: done, rejected: done, no_quorum: done }
  done:
    end: done
"#;

#[tokio::test]
async fn each_delegate_reads_the_council_words_in_their_language() {
    let council = Council::new(ROSTER, &[("trilingual.yaml", TRILINGUAL)]);
    let port = crate::harness::free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon =
        crate::harness::Daemon::start(council.path(), &[("COUNCILD_INBOUND_LISTEN", &listen)]);
    daemon
        .start_item(
            "trilingual",
            json!({
                "title": "Regulation on liaison officers",
                "title.fr": "Règlement sur les officiers de liaison",
                "title.ar": "لائحة ضباط الاتصال",
            }),
        )
        .await;
    let visible = |s: &str| s.replace(['\u{2066}', '\u{2068}', '\u{2069}'], "");
    let english = council.ballot_mail("aaa.head@").await;
    assert!(
        english
            .body
            .contains("Adopt the regulation “Regulation on liaison officers”?"),
        "{}",
        english.body
    );
    assert!(
        english.body.contains("Yes, No, No objection"),
        "{}",
        english.body
    );
    let arabic = council.ballot_mail("bbb.head@").await;
    let text = visible(&arabic.body);
    assert!(
        text.contains("هل تُعتمد اللائحة «لائحة ضباط الاتصال»؟"),
        "{text}"
    );
    assert!(text.contains("نعم") && text.contains("لا اعتراض"), "{text}");
    assert!(!text.contains("Regulation on liaison officers"), "{text}");

    // The French head has no ballot mail (the deputy is not the voter): the page in French.
    let (status, page) = daemon.get(&english.link().unwrap()).await;
    assert_eq!(status, 200);
    assert!(page.contains("No objection"), "{page}");
    let (_, page) = daemon.get(&arabic.link().unwrap()).await;
    assert!(
        visible(&page).contains("لائحة ضباط الاتصال") && page.contains("لا اعتراض"),
        "{page}"
    );

    // A reply in Arabic words, a label of two words that starts like the Arabic "no".
    reply(
        port,
        &arabic.reply_address().unwrap(),
        "لا اعتراض\n\nمع التحية",
    )
    .await
    .unwrap();
    let item = daemon
        .wait_item("item-1", "the Arabic reply", |i| {
            i["ballots"][0]["cast"] == 1
        })
        .await;
    assert_eq!(item["ballots"][0]["counts"]["no_objection"], 1, "{item}");
    let receipt = until("the receipt", Duration::from_secs(30), async || {
        council.mails().into_iter().find(|m| {
            m.to.contains("bbb.head@") && m.message_id != arabic.message_id && m.link().is_some()
        })
    })
    .await;
    let text = visible(&receipt.body);
    assert!(
        text.contains("لا اعتراض") && !text.contains("no_objection"),
        "{text}"
    );
}
