//! What delegates receive: languages, both parts, right-to-left Arabic, links, invitations.

use serde_json::json;

use crate::harness::{Council, ROSTER};

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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let agenda = loop {
        let mails: Vec<_> = council
            .mails()
            .into_iter()
            .filter(|m| m.ics.is_some())
            .collect();
        if mails.len() == 6 {
            break mails;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "agenda mail not written"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
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
