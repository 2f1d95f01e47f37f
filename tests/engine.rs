//! The pure engine, driven without any I/O: the sample workflows run to their ends on a
//! simulated clock, and replaying any log through `apply` gives exactly the state it built.

use std::collections::BTreeMap;

use chrono::{Duration, TimeZone, Utc};
use chrono_tz::Tz;
use councild::definition::{self, Known, Workflow};
use councild::engine::{Event, Item, Recipients, Rejection, Status, Timer};
use councild::roster::Roster;
use councild::simulate::Simulator;
use proptest::prelude::*;

fn workflow(name: &str) -> Workflow {
    let path = format!("{}/workflows/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    definition::load(
        &std::fs::read_to_string(path).unwrap(),
        &Known {
            templates: None,
            roster: None,
        },
    )
    .unwrap()
}

/// The shipped chair election as an open ballot: its `secret` and `trustees` lines out.
fn open_chair_election() -> Workflow {
    let path = format!(
        "{}/workflows/chair-election.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let source: String = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("secret: true") && !l.contains("trustees:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let known = Known {
        templates: None,
        roster: None,
    };
    definition::load(&source, &known).unwrap()
}

fn roster() -> Roster {
    Roster::parse(
        include_str!("../config/council.yaml"),
        councild::mail::is_address,
    )
    .unwrap()
}

/// The library's simulator, with the shortcuts these tests use.
struct Sim {
    roster: Roster,
    sim: Simulator<'static>,
}

impl Sim {
    fn new(workflow: Workflow) -> Sim {
        // The simulator borrows the workflow and roster for the whole test: leak them.
        let w: &'static Workflow = Box::leak(Box::new(workflow));
        let r: &'static Roster = Box::leak(Box::new(roster()));
        let tz: Tz = "Europe/Istanbul".parse().unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        Sim {
            roster: r.clone(),
            sim: Simulator::new(w, r, tz, now),
        }
    }

    fn item(&self) -> &Item {
        self.sim.item().unwrap()
    }

    fn apply(&mut self, event: Event) -> Result<(), Rejection> {
        self.sim.apply(event)
    }

    fn start(&mut self, inputs: &[(&str, &str)]) {
        let inputs = inputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.sim.start(inputs).unwrap();
    }

    fn advance(&mut self) -> bool {
        self.sim.advance()
    }

    fn vote(&mut self, member: &str, choice: &str) -> Result<(), Rejection> {
        let ballot = self.item().ballots.len() - 1;
        self.apply(Event::VoteCast {
            ballot,
            member: member.into(),
            choice: choice.into(),
            proofs: None,
        })
    }

    fn signal(&mut self, name: &str, member: &str) -> Result<(), Rejection> {
        self.apply(Event::Signal {
            name: name.into(),
            member: Some(member.into()),
            data: serde_json::Value::Null,
            members: 57,
            eligible: 55,
            groups: Vec::new(),
        })
    }

    fn replayed(&self) -> Option<Item> {
        self.sim.replayed().unwrap()
    }

    fn templates_sent(&self) -> Vec<&str> {
        let mut t: Vec<&str> = self
            .sim
            .world
            .mails
            .iter()
            .map(|(t, _)| t.as_str())
            .collect();
        t.dedup();
        t
    }
}

fn voters(sim: &Sim) -> Vec<String> {
    sim.item()
        .ballots
        .last()
        .unwrap()
        .electorate
        .iter()
        .map(|v| v.member.clone())
        .collect()
}

#[test]
fn regulation_adoption_runs_from_circulation_to_a_numbered_act() {
    let mut sim = Sim::new(workflow("regulation-adoption"));
    sim.start(&[("title", "Regulation on joint investigation teams")]);
    assert_eq!(sim.item().stage, "circulate");
    assert!(sim.advance(), "the comment period ends");
    assert_eq!(sim.item().stage, "vote");
    let voters = voters(&sim);
    assert_eq!(voters.len(), 55);
    assert!(
        !voters.contains(&"GNB".to_string()),
        "suspended members get no ballot"
    );
    // 40 yes, 10 no, 3 abstain: quorum 53 >= 2/3 * 55; pass 40 >= 2/3 * 50.
    for (i, m) in voters.iter().take(53).enumerate() {
        sim.vote(
            m,
            if i < 40 {
                "yes"
            } else if i < 50 {
                "no"
            } else {
                "abstain"
            },
        )
        .unwrap();
    }
    assert_eq!(
        sim.vote("GNB", "yes"),
        Err(Rejection::NotInElectorate("GNB".into()))
    );
    assert_eq!(
        sim.vote(&voters[0], "maybe"),
        Err(Rejection::NoSuchChoice("maybe".into()))
    );
    // Reminders go out before the deadline, then the deadline closes the ballot.
    while sim.item().status == Status::Open {
        assert!(sim.advance());
    }
    let item = sim.item();
    assert_eq!(item.outcome.as_deref(), Some("adopted"));
    assert_eq!(item.register_number.as_deref(), Some("CPCC/REG/2026/001"));
    let result = item.ballots[0].result.as_ref().unwrap();
    assert_eq!(
        result.counts,
        BTreeMap::from([("yes".into(), 40), ("no".into(), 10), ("abstain".into(), 3)])
    );
    assert_eq!(sim.vote(&voters[0], "no"), Err(Rejection::Ended));
    assert_eq!(
        sim.templates_sent(),
        [
            "draft-circulated",
            "ballot",
            "vote-receipt",
            "ballot-reminder",
            "regulation-adopted"
        ]
    );
    assert!(
        sim.sim
            .world
            .mails
            .contains(&("ballot-reminder".into(), Recipients::NotVoted(0)))
    );
    assert_eq!(sim.replayed().as_ref(), sim.sim.state.as_ref());
}

/// After downtime, overdue timers fire in order at the moment of the restart: a reminder is
/// sent only if nothing later of its ballot is due too.
#[test]
fn after_downtime_only_the_reminders_still_meaningful_are_sent() {
    let reminders = |sim: &Sim| {
        sim.sim
            .world
            .mails
            .iter()
            .filter(|(t, _)| t == "ballot-reminder")
            .count()
    };
    let mut sim = Sim::new(workflow("regulation-adoption"));
    sim.start(&[("title", "Draft")]);
    while sim.item().stage != "vote" {
        assert!(sim.advance());
    }
    let closes = sim.item().ballots[0].closes_at;
    // Down from before the first reminder (3 days before the close) until 12 hours before
    // the close: the first reminder is superseded by the second, which still goes out.
    sim.sim.now = closes - Duration::hours(12);
    assert!(sim.advance());
    assert_eq!(reminders(&sim), 0, "the 3-day reminder is dropped");
    assert!(sim.advance());
    assert_eq!(reminders(&sim), 1, "the 1-day reminder is sent late");
    assert_eq!(sim.item().status, Status::Open);

    // Down past a reminder and the deadline: the ballot closes and nobody is reminded.
    let mut sim = Sim::new(workflow("regulation-adoption"));
    sim.start(&[("title", "Draft")]);
    while sim.item().stage != "vote" {
        assert!(sim.advance());
    }
    sim.sim.now = sim.item().ballots[0].closes_at + Duration::days(1);
    while sim.item().stage == "vote" {
        assert!(sim.advance());
    }
    assert_eq!(reminders(&sim), 0);
    assert_eq!(sim.replayed().as_ref(), sim.sim.state.as_ref());
}

/// A repeat of the member's current choice is refused as a change: no event, no receipt.
#[test]
fn voting_the_same_choice_again_changes_nothing() {
    let mut sim = Sim::new(workflow("regulation-adoption"));
    sim.start(&[("title", "Draft")]);
    while sim.item().stage != "vote" {
        assert!(sim.advance());
    }
    let member = voters(&sim)[0].clone();
    sim.vote(&member, "yes").unwrap();
    let (events, mails) = (sim.sim.world.log.len(), sim.sim.world.mails.len());
    assert_eq!(sim.vote(&member, "yes"), Err(Rejection::SameChoice));
    assert_eq!(sim.sim.world.log.len(), events);
    assert_eq!(sim.sim.world.mails.len(), mails);
    // A different choice is a change, and so is going back.
    sim.vote(&member, "no").unwrap();
    sim.vote(&member, "yes").unwrap();
    assert_eq!(sim.sim.world.log.len(), events + 2);
}

#[test]
fn without_quorum_the_draft_goes_back_to_circulation() {
    let mut sim = Sim::new(workflow("regulation-adoption"));
    sim.start(&[("title", "Draft")]);
    sim.advance();
    for m in voters(&sim).iter().take(30) {
        sim.vote(m, "yes").unwrap();
    }
    while sim.item().stage == "vote" {
        sim.advance();
    }
    assert_eq!(sim.item().stage, "circulate");
    assert_eq!(
        sim.item().ballots[0]
            .result
            .as_ref()
            .unwrap()
            .verdict
            .as_str(),
        "no_quorum"
    );
    sim.advance();
    assert_eq!(
        sim.item().ballots.len(),
        2,
        "a new ballot, with a fresh electorate"
    );
    assert_eq!(sim.item().ballots[1].cast(), 0);
}

#[test]
fn the_statute_enters_into_force_thirty_days_after_the_nineteenth_ratification() {
    let mut sim = Sim::new(workflow("statute-ratification"));
    sim.start(&[("title", "Statute of the CPCC")]);
    let members: Vec<String> = sim.roster.members.iter().map(|m| m.id.clone()).collect();
    for m in members.iter().take(18) {
        sim.signal("ratification_deposited", m).unwrap();
    }
    // The writer refuses a second deposit; one already in a log is kept, not counted again.
    sim.signal("ratification_deposited", &members[0]).unwrap();
    assert_eq!(
        sim.signal("ratification_withdrawn", &members[30]),
        Err(Rejection::NothingToWithdraw(members[30].clone()))
    );
    // A withdrawal takes a state out of the count; it may deposit again.
    sim.signal("ratification_withdrawn", &members[1]).unwrap();
    let on = workflow("statute-ratification").stages["open-for-ratification"]
        .on_signal
        .clone()
        .unwrap();
    let standing = councild::engine::signalled(sim.item(), &on);
    assert_eq!(standing.count(), 17);
    assert_eq!(standing.withdrawn.len(), 1);
    assert_eq!(councild::engine::signals_needed(&on, 57, 55), Some(19));
    sim.signal("ratification_deposited", &members[1]).unwrap();
    assert_eq!(sim.item().stage, "open-for-ratification", "18 of 19");
    assert!(matches!(
        sim.signal("something_else", &members[30]),
        Err(Rejection::UnexpectedSignal { .. })
    ));
    sim.signal("ratification_deposited", &members[18]).unwrap();
    assert_eq!(sim.item().stage, "pending-entry-into-force");
    let due = *sim.item().timers.values().next().unwrap();
    assert_eq!(due - sim.sim.now, Duration::days(30));
    sim.advance();
    assert_eq!(sim.item().outcome.as_deref(), Some("in_force"));
    assert_eq!(
        sim.templates_sent(),
        [
            "ratification-opened",
            "ratification-threshold-reached",
            "statute-in-force"
        ]
    );
    assert_eq!(sim.replayed().as_ref(), sim.sim.state.as_ref());
}

#[test]
fn a_council_session_opens_on_its_schedule_and_circulates_the_agenda() {
    let w = workflow("council-session");
    let tz: Tz = "Europe/Istanbul".parse().unwrap();
    let schedule = w.schedule.clone().unwrap();
    let next = schedule
        .next_after(Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap(), tz)
        .unwrap();
    assert_eq!(
        next.with_timezone(&tz).to_rfc3339(),
        "2027-01-01T09:00:00+03:00"
    );
    let mut sim = Sim::new(w);
    sim.start(&[]);
    assert_eq!(sim.item().stage, "call-for-items");
    assert!(matches!(
        sim.sim.world.mails[0].1,
        Recipients::Audience(definition::Audience::Heads)
    ));
    assert_eq!(
        sim.item().inputs["place"],
        "CPCC Headquarters, Istanbul",
        "the default input"
    );
    sim.advance();
    assert_eq!(sim.item().stage, "agenda");
    let session = sim
        .item()
        .timers
        .values()
        .next()
        .map(|due| *due - sim.sim.now);
    assert_eq!(session, Some(Duration::days(14)), "the session date");
    sim.advance();
    assert_eq!(sim.item().stage, "meeting", "the meeting opens on its day");
    assert!(sim.item().meeting.as_ref().unwrap().opened_at.is_some());
    assert!(!sim.advance(), "and sits until the chair closes it");
    assert_eq!(
        sim.templates_sent(),
        ["call-for-agenda-items", "agenda-circulated"]
    );
}

#[test]
fn bad_inputs_are_refused_and_change_nothing() {
    let mut sim = Sim::new(workflow("regulation-adoption"));
    let start = |inputs: &[(&str, &str)]| Event::Started {
        workflow: "regulation-adoption".into(),
        version: String::new(),
        inputs: inputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    assert_eq!(
        sim.apply(start(&[])),
        Err(Rejection::MissingInput("title".into()))
    );
    assert_eq!(
        sim.apply(start(&[("title", "T"), ("colour", "red")])),
        Err(Rejection::UnknownInput("colour".into()))
    );
    assert!(matches!(
        sim.apply(start(&[("title", "T"), ("draft_url", "ftp://x")])),
        Err(Rejection::BadInput(..))
    ));
    assert!(sim.sim.state.is_none() && sim.sim.world.log.is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    Vote(usize, usize),
    Signal(usize),
    Fire,
    Wait(i64),
    Cancel,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..60usize, 0..4usize).prop_map(|(m, c)| Op::Vote(m, c)),
        3 => (0..60usize).prop_map(Op::Signal),
        3 => Just(Op::Fire),
        2 => (1..100_000i64).prop_map(Op::Wait),
        1 => Just(Op::Cancel),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever happens, folding the log from the start gives exactly the state, votes are
    /// one per member of the electorate, and register numbers have no gaps.
    #[test]
    fn replaying_the_log_gives_the_state(which in 0..2usize, ops in proptest::collection::vec(op(), 0..200)) {
        let name = ["regulation-adoption", "statute-ratification"][which];
        let mut sim = Sim::new(workflow(name));
        sim.start(&[("title", "T")]);
        let members: Vec<String> = sim.roster.members.iter().map(|m| m.id.clone()).collect();
        for op in ops {
            let _ = match op {
                Op::Vote(m, c) if !sim.item().ballots.is_empty() => {
                    let choice = ["yes", "no", "abstain", "maybe"][c];
                    sim.vote(&members[m % members.len()], choice)
                }
                Op::Vote(..) => Ok(()),
                Op::Signal(m) => sim.signal("ratification_deposited", &members[m % members.len()]),
                Op::Fire => { sim.advance(); Ok(()) }
                Op::Wait(s) => { sim.sim.now += Duration::seconds(s); Ok(()) }
                Op::Cancel => sim.apply(Event::Cancelled { reason: "test".into() }),
            };
            for b in &sim.item().ballots {
                prop_assert!(b.cast() <= b.electorate.len());
                prop_assert_eq!(b.votes().count(), b.cast());
            }
        }
        let replayed = sim.replayed();
        prop_assert_eq!(replayed.as_ref(), sim.sim.state.as_ref());
        if let Some(n) = &sim.item().register_number {
            prop_assert_eq!(n, "CPCC/REG/2026/001");
        }
    }
}

fn tie_workflow(tie: &str) -> Workflow {
    let source = format!(
        "workflow: tie\nstart: vote\nstages:\n  vote:\n    ballot:\n      question: Adopt?\n      closes_after: 1d\n      pass: simple_majority\n      tie: {tie}\n    outcomes: {{ adopted: a, rejected: r, no_quorum: r }}\n  a: {{ end: adopted }}\n  r: {{ end: rejected }}\n"
    );
    let roster = roster();
    definition::load(
        &source,
        &Known {
            templates: None,
            roster: Some(&roster),
        },
    )
    .unwrap()
}

/// Two yes, two no: the tie rule decides, as the rules of procedure say.
fn tied(tie: &str, chair_votes: &str) -> String {
    let mut sim = Sim::new(tie_workflow(tie));
    sim.start(&[]);
    for (member, choice) in [
        ("TUR", chair_votes),
        ("EGY", if chair_votes == "yes" { "no" } else { "yes" }),
        ("PAK", "yes"),
        ("SAU", "no"),
    ] {
        sim.vote(member, choice).unwrap();
    }
    sim.advance();
    let item = sim.item();
    let result = item.ballots[0].result.as_ref().unwrap();
    assert!(result.explanation.contains("tie"), "{}", result.explanation);
    item.outcome.clone().unwrap()
}

#[test]
fn ties_are_broken_by_the_rule_of_the_ballot() {
    assert_eq!(
        tied("{ chair: TUR }", "yes"),
        "adopted",
        "the chair's casting vote"
    );
    assert_eq!(tied("{ chair: TUR }", "no"), "rejected");
    assert_eq!(tied("fails", "yes"), "rejected", "a tie fails");
    let roster = roster();
    let err = definition::load(
        &tie_workflow("fails")
            .source
            .replace("fails", "{ chair: XXX }"),
        &Known {
            templates: None,
            roster: Some(&roster),
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("the roster has no member `XXX`"),
        "{err}"
    );
}

/// Which mails a workflow sends with which template, and what each then knows: the
/// circulation of a regulation goes out before its ballot and, after a vote without
/// quorum sends it back, after one; its ballot, reminders and receipts are ballot mail.
#[test]
fn each_template_use_knows_whether_a_ballot_came_before() {
    use councild::definition::MailKind;
    let uses: Vec<(String, String, MailKind, bool)> = workflow("regulation-adoption")
        .template_uses()
        .into_iter()
        .map(|u| (u.template, u.stage, u.kind, u.waits))
        .collect();
    let has = |t: &str, s: &str, k: MailKind, waits: bool| {
        uses.contains(&(t.to_string(), s.to_string(), k, waits))
    };
    let before = MailKind::Notify {
        after_ballot: false,
    };
    let after = MailKind::Notify { after_ballot: true };
    assert!(
        has("draft-circulated", "circulate", before.clone(), true),
        "{uses:?}"
    );
    assert!(
        has("draft-circulated", "circulate", after.clone(), true),
        "{uses:?}"
    );
    assert!(has("ballot", "vote", MailKind::Ballot, false), "{uses:?}");
    assert!(
        has("ballot-reminder", "vote", MailKind::Ballot, false),
        "{uses:?}"
    );
    assert!(
        has("vote-receipt", "vote", MailKind::Receipt, false),
        "{uses:?}"
    );
    assert!(
        has("regulation-adopted", "adopt", after.clone(), false),
        "{uses:?}"
    );
    assert!(
        !has("regulation-adopted", "adopt", before, false),
        "only after the vote"
    );
    assert!(
        has("ballot", "amendments", MailKind::Ballot, false),
        "{uses:?}"
    );
    assert!(
        has("vote-receipt", "amendments", MailKind::Receipt, false),
        "{uses:?}"
    );
    assert_eq!(uses.len(), 9, "{uses:?}");
}

fn members(list: &[&str]) -> Vec<String> {
    list.iter().map(|m| m.to_string()).collect()
}

#[test]
fn a_session_keeps_its_agenda_and_attendance_and_refuses_what_does_not_fit_its_stage() {
    use councild::engine::PointStatus;
    let mut sim = Sim::new(workflow("council-session"));
    sim.start(&[]);
    assert_eq!(sim.item().stage, "call-for-items");
    let point = |title: &str, member: Option<&str>| Event::PointAdded {
        title: title.into(),
        explanation: String::new(),
        url: None,
        item: None,
        member: member.map(String::from),
        carried_from: None,
    };
    sim.apply(point("Cooperation with INTERPOL", Some("TUR")))
        .unwrap();
    assert_eq!(sim.apply(point("  ", None)), Err(Rejection::NoTitle));
    let attend = |arrived: &[&str], left: &[&str]| Event::Attendance {
        arrived: members(arrived),
        left: members(left),
    };
    assert_eq!(
        sim.apply(attend(&["TUR"], &[])),
        Err(Rejection::NotInMeeting("call-for-items".into())),
        "attendance only in the meeting"
    );
    assert!(sim.advance(), "the call for points closes");
    assert_eq!(sim.item().stage, "agenda");
    assert_eq!(
        sim.apply(point("Late point", Some("EGY"))),
        Err(Rejection::NotTakingProposals)
    );
    sim.apply(point("Any other business", None)).unwrap();
    sim.apply(Event::MovedOn).unwrap();
    assert_eq!(sim.item().stage, "meeting", "opened on the day");
    assert_eq!(
        sim.apply(Event::MovedOn),
        Err(Rejection::NotWaiting("meeting".into()))
    );
    sim.apply(attend(&["TUR", "EGY", "SAU"], &[])).unwrap();
    assert_eq!(
        sim.apply(attend(&["TUR"], &[])),
        Err(Rejection::NothingChanged)
    );
    assert_eq!(
        sim.apply(attend(&["IRN"], &["IRN"])),
        Err(Rejection::CountedTwice("IRN".into()))
    );
    sim.apply(attend(&["IRN"], &["SAU"])).unwrap();
    sim.apply(Event::AgendaAdopted).unwrap();
    assert_eq!(
        sim.apply(Event::AgendaAdopted),
        Err(Rejection::NothingChanged)
    );
    sim.apply(Event::PointMoved { point: 2, place: 1 }).unwrap();
    assert_eq!(
        sim.apply(Event::PointMoved { point: 2, place: 9 }),
        Err(Rejection::BadInput(
            "place".into(),
            "must be from 1 to 2".into()
        ))
    );
    sim.apply(Event::PointMarked {
        point: 1,
        status: PointStatus::Deferred,
    })
    .unwrap();
    assert_eq!(
        sim.apply(Event::PointMarked {
            point: 7,
            status: PointStatus::Withdrawn
        }),
        Err(Rejection::NoSuchPoint(7))
    );
    sim.apply(Event::StatementRecorded {
        member: "TUR".into(),
        point: Some(1),
        text: "Türkiye asks that the point be taken first next time.".into(),
    })
    .unwrap();
    let m = sim.item().meeting.clone().unwrap();
    assert_eq!(m.present(), members(&["TUR", "EGY", "IRN"]));
    let order: Vec<(u32, PointStatus)> = m.agenda.iter().map(|p| (p.number, p.status)).collect();
    assert_eq!(
        order,
        [(2, PointStatus::Listed), (1, PointStatus::Deferred)]
    );
    assert_eq!(m.agenda[1].proposed_by.as_deref(), Some("TUR"));
    let text = "<p>The record</p>".to_string();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
    let hashes = BTreeMap::from([("en".to_string(), digest)]);
    let texts = BTreeMap::from([("en".to_string(), text)]);
    assert_eq!(
        sim.apply(Event::RecordCirculated {
            hashes: hashes.clone(),
            texts: texts.clone(),
        }),
        Err(Rejection::MeetingNotClosed)
    );
    sim.apply(Event::MeetingClosed).unwrap();
    assert_eq!(
        sim.item().stage,
        "record",
        "the record is circulated for comment"
    );
    assert!(sim.item().meeting.as_ref().unwrap().closed_at.is_some());
    assert_eq!(
        sim.apply(attend(&["SAU"], &[])),
        Err(Rejection::NotInMeeting("record".into()))
    );
    assert!(matches!(
        sim.apply(Event::RecordCirculated {
            hashes: BTreeMap::from([("en".to_string(), "not a hash".to_string())]),
            texts: BTreeMap::new(),
        }),
        Err(Rejection::BadInput(..))
    ));
    assert!(
        matches!(
            sim.apply(Event::RecordCirculated {
                hashes: BTreeMap::from([("en".to_string(), "ab".repeat(32))]),
                texts: texts.clone(),
            }),
            Err(Rejection::BadInput(..))
        ),
        "a text must have its hash"
    );
    sim.apply(Event::RecordCirculated { hashes, texts })
        .unwrap();
    assert_eq!(sim.item().meeting.as_ref().unwrap().circulated.len(), 1);
    assert!(sim.advance(), "the comment period ends");
    let item = sim.item();
    assert_eq!(
        (item.status, item.outcome.as_deref()),
        (Status::Ended, Some("held"))
    );
    assert_eq!(sim.replayed().as_ref(), sim.sim.state.as_ref());
}

#[test]
fn a_vote_in_the_room_is_checked_against_those_present_and_decided_by_the_ballots_rules() {
    use councild::engine::RoomMethod;
    let mut sim = Sim::new(workflow("session-decision"));
    sim.start(&[("title", "Regulation on liaison officers")]);
    assert_eq!(sim.item().stage, "vote");
    assert!(sim.item().ballots[0].in_session);
    assert!(
        sim.templates_sent().is_empty(),
        "no ballot mail for a vote in session"
    );
    assert_eq!(sim.vote("TUR", "yes"), Err(Rejection::InSession));
    let voters = voters(&sim);
    let present: Vec<String> = voters.iter().take(40).cloned().collect();
    let roll_call =
        |ballot: usize, present: &[String], votes: &[(&str, &str)]| Event::VoteRecorded {
            ballot,
            session: "item-9".into(),
            present: present.to_vec(),
            method: RoomMethod::RollCall,
            votes: votes
                .iter()
                .map(|(m, c)| (m.to_string(), c.to_string()))
                .collect(),
            hands: BTreeMap::new(),
        };
    let absent = voters[45].clone();
    assert_eq!(
        sim.apply(roll_call(0, &present, &[(&absent, "yes")])),
        Err(Rejection::NotPresent(absent.clone()))
    );
    assert_eq!(
        sim.apply(roll_call(0, &present, &[("GNB", "yes")])),
        Err(Rejection::NotInElectorate("GNB".into())),
        "a suspended member has no vote"
    );
    assert_eq!(
        sim.apply(roll_call(0, &present, &[(&present[0], "maybe")])),
        Err(Rejection::NoSuchChoice("maybe".into()))
    );
    let hands = |ballot: usize, present: &[String], counts: &[(&str, u64)]| Event::VoteRecorded {
        ballot,
        session: "item-9".into(),
        present: present.to_vec(),
        method: RoomMethod::ShowOfHands,
        votes: BTreeMap::new(),
        hands: counts.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
    };
    assert_eq!(
        sim.apply(hands(0, &present, &[("yes", 30), ("no", 11)])),
        Err(Rejection::AbovePresent {
            counted: 41,
            present: 40
        })
    );
    // 20 present of 55: no quorum, and the point is voted again.
    sim.apply(hands(0, &present[..20], &[("yes", 20)])).unwrap();
    let item = sim.item();
    assert_eq!(
        item.ballots[0].result.as_ref().unwrap().verdict,
        councild::rules::Verdict::NoQuorum
    );
    assert_eq!(item.ballots.len(), 2, "a new vote in the same meeting");
    // A roll-call of the 40 present: 30 yes, 8 no, 2 not voting.
    let votes: Vec<(&str, &str)> = present
        .iter()
        .take(38)
        .enumerate()
        .map(|(i, m)| (m.as_str(), if i < 30 { "yes" } else { "no" }))
        .collect();
    sim.apply(roll_call(1, &present, &votes)).unwrap();
    let item = sim.item();
    let b = &item.ballots[1];
    assert_eq!(b.cast(), 38);
    assert_eq!(b.room.as_ref().unwrap().present.len(), 40);
    assert_eq!(b.vote(&present[0]), Some("yes"));
    assert_eq!(item.outcome.as_deref(), Some("adopted"));
    assert_eq!(item.register_number.as_deref(), Some("CPCC/EC/2026/D001"));
    assert!(
        b.result.as_ref().unwrap().explanation.contains("present"),
        "{}",
        b.result.as_ref().unwrap().explanation
    );
    assert_eq!(sim.replayed().as_ref(), sim.sim.state.as_ref());
}

#[test]
fn an_electronic_vote_in_the_room_takes_the_votes_of_those_present_until_the_chair_closes_it() {
    let mut sim = Sim::new(workflow("session-decision"));
    sim.start(&[("title", "Date of the next session")]);
    let voters = voters(&sim);
    let present: Vec<String> = voters.iter().take(30).cloned().collect();
    assert_eq!(
        sim.apply(Event::RoomVoteClosed { ballot: 0 }),
        Err(Rejection::NoElectronicVote)
    );
    sim.apply(Event::RoomVoteOpened {
        ballot: 0,
        session: "item-9".into(),
        present: present.clone(),
    })
    .unwrap();
    assert!(
        sim.sim
            .world
            .mails
            .contains(&("ballot".into(), Recipients::InRoom(0))),
        "the links go to those present"
    );
    assert_eq!(
        sim.vote(&voters[40], "yes"),
        Err(Rejection::NotPresent(voters[40].clone()))
    );
    for (i, m) in present.iter().enumerate() {
        sim.vote(m, if i < 20 { "yes" } else { "no" }).unwrap();
    }
    sim.vote(&present[0], "no").unwrap(); // changed, until the close
    assert_eq!(
        sim.apply(Event::VoteRecorded {
            ballot: 0,
            session: "item-9".into(),
            present: present.clone(),
            method: councild::engine::RoomMethod::ShowOfHands,
            votes: BTreeMap::new(),
            hands: BTreeMap::from([("yes".into(), 1)]),
        }),
        Err(Rejection::ElectronicVoteOpen)
    );
    assert_eq!(sim.item().status, Status::Open, "no deadline closes it");
    sim.apply(Event::RoomVoteClosed { ballot: 0 }).unwrap();
    let item = sim.item();
    let result = item.ballots[0].result.as_ref().unwrap();
    assert_eq!(result.counts["yes"], 19);
    assert_eq!(result.counts["no"], 11);
    assert_eq!(result.reason, "recorded in session: electronic vote");
    assert_eq!(item.outcome.as_deref(), Some("adopted"));
    assert_eq!(sim.replayed().as_ref(), sim.sim.state.as_ref());
}

#[test]
fn a_vote_due_in_session_can_be_sent_to_an_email_ballot_instead() {
    let mut sim = Sim::new(workflow("session-decision"));
    sim.start(&[("title", "Budget for 2027")]);
    let now = sim.sim.now;
    assert_eq!(
        sim.apply(Event::SentToEmailBallot {
            ballot: 0,
            closes_at: now
        }),
        Err(Rejection::BadInput(
            "closes_at".into(),
            "the deadline must be in the future".into()
        ))
    );
    sim.apply(Event::SentToEmailBallot {
        ballot: 0,
        closes_at: now + Duration::days(7),
    })
    .unwrap();
    assert!(
        sim.sim
            .world
            .mails
            .contains(&("ballot".into(), Recipients::Electorate(0))),
        "the ballot goes to every voting member"
    );
    for m in voters(&sim).iter().take(40) {
        sim.vote(m, "yes").unwrap();
    }
    assert!(sim.advance(), "the deadline closes it");
    let item = sim.item();
    assert_eq!(item.outcome.as_deref(), Some("adopted"));
    assert_eq!(
        item.ballots[0].result.as_ref().unwrap().reason,
        "the deadline passed"
    );
    assert_eq!(sim.replayed().as_ref(), sim.sim.state.as_ref());
}

/// The UN Charter's article 110: in force on ratification by two thirds of the members,
/// the permanent members of the Security Council among them.
#[test]
fn a_ratification_threshold_can_name_members_that_must_be_among_them() {
    let w = definition::load(
        r#"
workflow: charter
title: Charter
start: open
stages:
  open:
    on_signal:
      name: ratified
      until: "count >= 2/3 * members and count(group: permanent) == 2"
      next: in-force
  in-force:
    end: in_force
"#,
        &Known {
            templates: None,
            roster: None,
        },
    )
    .unwrap();
    let mut sim = Sim::new(w);
    sim.start(&[]);
    let deposit = |member: &str, permanent: bool| Event::Signal {
        name: "ratified".into(),
        member: Some(member.into()),
        data: serde_json::Value::Null,
        members: 6,
        eligible: 6,
        groups: if permanent {
            vec!["permanent".into()]
        } else {
            Vec::new()
        },
    };
    for m in ["A", "B", "C", "D"] {
        sim.apply(deposit(m, false)).unwrap();
    }
    sim.apply(deposit("P1", true)).unwrap();
    assert_eq!(
        sim.item().stage,
        "open",
        "five of six, one permanent member"
    );
    sim.apply(deposit("P2", true)).unwrap();
    assert_eq!(sim.item().outcome.as_deref(), Some("in_force"));
    assert_eq!(sim.replayed().as_ref(), sim.sim.state.as_ref());
}

/// A rule that weighs each member's vote (the EU's qualified majority) cannot be decided by
/// counts alone: a show of hands is refused, a roll-call decides it.
#[test]
fn a_show_of_hands_is_refused_where_the_rules_weigh_each_vote() {
    let w = definition::load(
        r#"
workflow: weighted-in-session
title: Weighted decision in session
start: vote
stages:
  vote:
    ballot:
      in_session: true
      question: "Adopt?"
      pass: qualified_majority_eu
    outcomes: { adopted: done, rejected: done, no_quorum: done }
  done:
    end: done
"#,
        &Known {
            templates: None,
            roster: None,
        },
    )
    .unwrap();
    let mut sim = Sim::new(w);
    sim.start(&[]);
    let present = voters(&sim);
    let hands = Event::VoteRecorded {
        ballot: 0,
        session: "item-9".into(),
        present: present.clone(),
        method: councild::engine::RoomMethod::ShowOfHands,
        votes: BTreeMap::new(),
        hands: BTreeMap::from([("yes".into(), 40)]),
    };
    assert!(matches!(sim.apply(hands), Err(Rejection::BadInput(..))));
    let roll_call = Event::VoteRecorded {
        ballot: 0,
        session: "item-9".into(),
        present: present.clone(),
        method: councild::engine::RoomMethod::RollCall,
        votes: present
            .iter()
            .map(|m| (m.clone(), "yes".to_string()))
            .collect(),
        hands: BTreeMap::new(),
    };
    sim.apply(roll_call).unwrap();
    assert_eq!(sim.item().outcome.as_deref(), Some("done"));
}

/// A regulation's three authentic versions: the comment period waits for the last one,
/// starts again when one is replaced, and the ballot freezes them and names their hashes.
#[test]
fn the_texts_start_the_comment_period_and_the_vote_freezes_them() {
    let mut sim = Sim::new(workflow("regulation-adoption"));
    let w = sim.sim.workflow;
    sim.apply(Event::Started {
        workflow: w.name.clone(),
        version: w.version.clone(),
        inputs: BTreeMap::from([("title".into(), "Regulation on data exchange".into())]),
    })
    .unwrap();
    let text = |language: &str, sha: char| Event::DocumentAdded {
        language: language.into(),
        sha256: sha.to_string().repeat(64),
        bytes: 1000,
        name: format!("regulation-{language}.pdf"),
        media_type: "application/pdf".into(),
        url: None,
    };
    let notices = |sim: &Sim| {
        sim.sim
            .world
            .mails
            .iter()
            .filter(|(t, _)| t == "draft-circulated")
            .count()
    };
    // Without its texts, nothing is circulated and no time runs.
    assert_eq!(sim.item().stage, "circulate");
    assert_eq!(notices(&sim), 0);
    assert!(sim.item().timers.is_empty());
    sim.apply(text("ar", 'a')).unwrap();
    sim.apply(text("en", 'b')).unwrap();
    assert_eq!(notices(&sim), 0, "two of three languages");
    // Refusals change nothing.
    let before = sim.item().clone();
    assert!(matches!(
        sim.apply(text("de", 'c')),
        Err(Rejection::BadInput(field, _)) if field == "language"
    ));
    let mut bad = text("fr", 'c');
    if let Event::DocumentAdded { sha256, .. } = &mut bad {
        *sha256 = "not a hash".into();
    }
    assert!(matches!(sim.apply(bad), Err(Rejection::BadInput(field, _)) if field == "sha256"));
    assert_eq!(
        sim.apply(text("en", 'b')),
        Err(Rejection::SameVersion("en".into()))
    );
    assert_eq!(*sim.item(), before);
    // The last language: the notice goes and the fourteen days start.
    sim.sim.now += Duration::days(1);
    sim.apply(text("fr", 'c')).unwrap();
    assert_eq!(notices(&sim), 1);
    let due = |sim: &Sim| sim.item().timers[&Timer::Next("circulate".into())];
    assert_eq!(due(&sim), sim.sim.now + Duration::days(14));
    // A version replaced ten days in: the comment period starts again, with a new notice.
    sim.sim.now += Duration::days(10);
    sim.apply(text("en", 'd')).unwrap();
    assert_eq!(notices(&sim), 2);
    assert_eq!(due(&sim), sim.sim.now + Duration::days(14));
    assert_eq!(sim.item().timers.len(), 1, "the old deadline is gone");
    assert_eq!(
        sim.item().documents["en"].len(),
        2,
        "both versions are kept"
    );
    // The ballot opens on the current versions and freezes them.
    assert!(sim.advance());
    assert_eq!(sim.item().stage, "vote");
    let texts = BTreeMap::from([
        ("ar".to_string(), "a".repeat(64)),
        ("en".to_string(), "d".repeat(64)),
        ("fr".to_string(), "c".repeat(64)),
    ]);
    assert_eq!(sim.item().ballots[0].texts, texts);
    assert!(matches!(
        sim.apply(text("fr", 'e')),
        Err(Rejection::TextsFrozen { ballot: 1, .. })
    ));
    assert_eq!(sim.replayed().as_ref(), sim.sim.state.as_ref());
}

/// Two amendments put to the vote in the order of their ranks, one adopted and one
/// rejected; a third on the same passage as the adopted one falls; the final ballot is on
/// the texts with the adopted amendment applied.
#[test]
fn amendments_are_voted_furthest_reaching_first_and_the_adopted_ones_applied() {
    use councild::engine::{Change, Fate};
    let mut sim = Sim::new(workflow("regulation-adoption"));
    sim.start(&[("title", "Regulation on joint investigation teams")]);
    let en = sim.item().texts()["en"].clone();
    let amend = |start: u64, end: u64| Event::AmendmentProposed {
        member: "TUR".into(),
        changes: BTreeMap::from([(
            "en".to_string(),
            Change {
                passage: "by agreement".into(),
                replacement: "by written agreement".into(),
            },
        )]),
        reason: String::new(),
        against: BTreeMap::from([("en".to_string(), en.clone())]),
        spans: BTreeMap::from([("en".to_string(), (start, end))]),
    };
    sim.apply(amend(10, 20)).unwrap();
    sim.apply(amend(40, 50)).unwrap();
    sim.apply(amend(15, 25)).unwrap(); // the same passage as the first
    // Against another version: refused.
    let mut stale = amend(60, 70);
    if let Event::AmendmentProposed { against, .. } = &mut stale {
        against.insert("en".into(), "0".repeat(64));
    }
    assert!(matches!(sim.apply(stale), Err(Rejection::BadInput(..))));
    // While they wait, the versions they amend cannot be replaced.
    let replace = Event::DocumentAdded {
        language: "en".into(),
        sha256: "e".repeat(64),
        bytes: 1,
        name: "x".into(),
        media_type: "text/plain".into(),
        url: None,
    };
    assert_eq!(sim.apply(replace), Err(Rejection::AmendedVersions(1)));
    let rule = |n: u32, rank: u32| Event::AmendmentRuled {
        amendment: n,
        receivable: true,
        rank: Some(rank),
        reason: String::new(),
    };
    // The second is the furthest-reaching: voted first.
    sim.apply(rule(2, 1)).unwrap();
    sim.apply(rule(1, 2)).unwrap();
    sim.apply(rule(3, 3)).unwrap();
    assert!(sim.advance(), "the comment period ends");
    assert_eq!(sim.item().stage, "amendments");
    assert_eq!(sim.item().ballots[0].amendment, Some(2));
    for v in voters(&sim) {
        sim.vote(&v, "no").unwrap();
    }
    while sim.item().ballots.len() < 2 {
        assert!(sim.advance());
    }
    assert_eq!(sim.item().ballots[1].amendment, Some(1));
    assert_eq!(
        sim.apply(rule(1, 1)),
        Err(Rejection::AmendmentDecided(1)),
        "its vote has started"
    );
    for v in voters(&sim) {
        sim.vote(&v, "yes").unwrap();
    }
    while sim.item().stage == "amendments" {
        assert!(sim.advance());
    }
    let item = sim.item();
    let fates: Vec<Option<Fate>> = item.amendments.iter().map(|a| a.fate).collect();
    assert_eq!(
        fates,
        [
            Some(Fate::Adopted),
            Some(Fate::Rejected),
            Some(Fate::Fallen)
        ]
    );
    assert_eq!(item.stage, "vote");
    assert_eq!(item.ballots.len(), 3, "no ballot on the fallen one");
    let amended = item.documents["en"].last().unwrap();
    assert_eq!(amended.amendments, [1]);
    assert_ne!(amended.sha256, en);
    assert_eq!(item.ballots[2].texts["en"], amended.sha256);
    assert_eq!(
        item.documents["ar"].len(),
        1,
        "an unamended language keeps its version"
    );
    assert_eq!(sim.replayed().as_ref(), sim.sim.state.as_ref());
}

// Elections: candidates nominated and confirmed, rounds, seats, blank ballots.

fn nominate(sim: &mut Sim, id: &str, name: &str) -> Result<(), Rejection> {
    sim.apply(Event::Nominated {
        candidate: id.into(),
        name: BTreeMap::from([("en".to_string(), name.to_string())]),
        member: None,
    })
}

/// Each voter, in the electorate's order, casts the next of `ballots` (a choice and how many
/// cast it); the rest do not vote. Then the clock runs to the round's close.
fn vote_round(sim: &mut Sim, ballots: &[(&str, usize)]) {
    let voters = voters(sim);
    let round = sim.item().ballots.len();
    let mut next = voters.iter();
    for (choice, n) in ballots {
        for m in next.by_ref().take(*n) {
            sim.vote(m, choice).unwrap();
        }
    }
    while sim.item().ballots.len() == round && sim.item().ballots[round - 1].result.is_none() {
        assert!(sim.advance(), "the round closes at its deadline");
    }
}

fn chair_election(candidates: &[(&str, &str)]) -> Sim {
    let mut sim = Sim::new(open_chair_election());
    sim.start(&[]);
    assert_eq!(sim.item().stage, "nominations");
    for (id, name) in candidates {
        nominate(&mut sim, id, name).unwrap();
    }
    let ids = candidates.iter().map(|(id, _)| id.to_string()).collect();
    sim.apply(Event::CandidatesConfirmed { candidates: ids })
        .unwrap();
    sim
}

#[test]
fn a_chair_is_elected_in_a_second_round_between_the_two_best_placed() {
    let mut sim = chair_election(&[
        ("al_farsi", "Ahmed Al-Farsi"),
        ("ozturk", "Ayşe Öztürk"),
        ("diallo", "Mamadou Diallo"),
    ]);
    assert_eq!(sim.item().stage, "elect");
    let round1 = &sim.item().ballots[0];
    assert_eq!(round1.choices, ["al_farsi", "ozturk", "diallo", "blank"]);
    assert_eq!(
        sim.apply(Event::Nominated {
            candidate: "late".into(),
            name: BTreeMap::from([("en".into(), "Late".into())]),
            member: None,
        }),
        Err(Rejection::NotTakingNominations)
    );
    // 48 votes cast and 5 blank: 25 needed; Al-Farsi has 20.
    vote_round(
        &mut sim,
        &[
            ("al_farsi", 20),
            ("ozturk", 18),
            ("diallo", 10),
            ("blank", 5),
        ],
    );
    let item = sim.item();
    let r1 = item.ballots[0].result.as_ref().unwrap();
    assert_eq!(r1.verdict.as_str(), "no_winner");
    assert_eq!(r1.counts["blank"], 5);
    assert!(r1.explanation.contains("25 needed"), "{}", r1.explanation);
    assert!(item.elected.is_empty());
    assert_eq!(item.ballots.len(), 2, "a second round");
    assert_eq!(item.ballots[1].choices, ["al_farsi", "ozturk", "blank"]);
    assert_eq!(
        sim.vote("AFG", "diallo"),
        Err(Rejection::NoSuchChoice("diallo".into())),
        "the third placed does not stand in the second round"
    );
    vote_round(&mut sim, &[("al_farsi", 24), ("ozturk", 26), ("blank", 3)]);
    let item = sim.item();
    assert_eq!(item.elected, ["ozturk"]);
    assert_eq!(item.ballots[1].result.as_ref().unwrap().elected, ["ozturk"]);
    assert_eq!(item.outcome.as_deref(), Some("elected"));
    assert_eq!(item.register_number.as_deref(), Some("CPCC/APP/2026/001"));
    assert!(sim.templates_sent().contains(&"election-result"));
    assert_eq!(sim.replayed().as_ref(), sim.sim.state.as_ref());
}

#[test]
fn blank_ballots_are_not_votes_cast_and_a_tie_in_the_last_round_is_drawn_by_lot() {
    // 25 of the 48 votes cast elect in the first round, though 53 ballots came back.
    let mut sim = chair_election(&[("a", "A"), ("b", "B"), ("c", "C")]);
    vote_round(&mut sim, &[("a", 25), ("b", 15), ("c", 8), ("blank", 5)]);
    assert_eq!(sim.item().elected, ["a"]);
    assert_eq!(sim.item().ballots.len(), 1);

    let mut sim = chair_election(&[("a", "A"), ("b", "B"), ("c", "C")]);
    vote_round(&mut sim, &[("a", 20), ("b", 20), ("c", 10)]);
    vote_round(&mut sim, &[("a", 25), ("b", 25)]);
    let item = sim.item();
    let r2 = item.ballots[1].result.as_ref().unwrap();
    assert!(
        r2.explanation.contains("drawn by lot"),
        "{}",
        r2.explanation
    );
    assert_eq!(item.elected.len(), 1);
    assert_eq!(item.outcome.as_deref(), Some("elected"));
    // The draw is fixed by the log: replay draws the same.
    assert_eq!(sim.replayed().as_ref(), sim.sim.state.as_ref());
}

#[test]
fn three_seats_are_filled_by_the_majority_then_by_a_restricted_round() {
    let mut sim = Sim::new(workflow("committee-election"));
    sim.start(&[("title", "Committee on Budget and Finance")]);
    for id in ["a", "b", "c", "d", "e"] {
        nominate(&mut sim, id, &id.to_uppercase()).unwrap();
    }
    assert_eq!(
        nominate(&mut sim, "a", "A"),
        Err(Rejection::CandidateExists("a".into()))
    );
    assert_eq!(
        sim.apply(Event::CandidatesConfirmed {
            candidates: vec!["a".into(), "zz".into()]
        }),
        Err(Rejection::NoSuchCandidate("zz".into()))
    );
    assert_eq!(
        sim.apply(Event::CandidatesConfirmed {
            candidates: vec!["a".into(), "a".into()]
        }),
        Err(Rejection::ListedTwice("a".into()))
    );
    let all = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
    sim.apply(Event::CandidatesConfirmed { candidates: all })
        .unwrap();
    assert_eq!(sim.vote("AFG", "a+b+c+d"), Err(Rejection::TooManyMarks(3)));
    assert_eq!(
        sim.vote("AFG", "a+blank"),
        Err(Rejection::NoSuchChoice("a+blank".into()))
    );
    // A vote is put in the ballot's order: `c+a` is `a+c`; voting it again changes nothing.
    sim.vote("AFG", "c+a").unwrap();
    assert_eq!(sim.item().ballots[0].vote("AFG"), Some("a+c"));
    assert_eq!(sim.vote("AFG", "a+c"), Err(Rejection::SameChoice));
    // 37 ballots for candidates: 19 needed. a 30, b 25 are elected; c 18, d 17, e 5 not.
    vote_round(
        &mut sim,
        &[
            ("a+b+c", 15),
            ("a+b+d", 10),
            ("a+d", 5),
            ("c+d", 2),
            ("c+e", 1),
            ("e", 4),
            ("blank", 2),
        ],
    );
    // AFG's `a+c` was replaced by its first ballot of the round (`a+b+c`).
    let item = sim.item();
    let r1 = item.ballots[0].result.as_ref().unwrap();
    assert_eq!(r1.elected, ["a", "b"], "{}", r1.explanation);
    assert!(
        r1.explanation
            .contains("a 30, b 25, c 18, d 17, e 5; blank 2; 37 ballots for candidates; 19 needed"),
        "{}",
        r1.explanation
    );
    assert_eq!(item.ballots[1].round.unwrap().seats, 1);
    assert_eq!(item.ballots[1].choices, ["c", "d", "blank"]);
    vote_round(&mut sim, &[("c", 20), ("d", 22)]);
    let item = sim.item();
    assert_eq!(item.elected, ["a", "b", "d"]);
    assert_eq!(item.outcome.as_deref(), Some("announced"));
    assert_eq!(sim.replayed().as_ref(), sim.sim.state.as_ref());
}

#[test]
fn the_simulator_nominates_the_votes_choices_and_lets_lapsed_votes_go() {
    use councild::simulate::{Votes, render, run};
    let tz: Tz = "Europe/Istanbul".parse().unwrap();
    let start = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
    let votes = Votes::parse_counts("a=20,b=18,c=10,blank=5").unwrap();
    let w = open_chair_election();
    let report = run(&w, &roster(), tz, BTreeMap::new(), &votes, start).unwrap();
    assert_eq!(report.outcome.as_deref(), Some("elected"));
    let text = render(&report, tz);
    assert!(text.contains("next round: a, b"), "{text}");
    assert!(text.contains("round 2: a 20, b 18; blank 5"), "{text}");
}

/// The shipped (secret) chair election on the simulator: the trustees make the key, every
/// vote is encrypted with its proofs, each round's tally is decrypted by two of the three
/// trustees; the rounds count exactly as the open ballot's do (a lot would differ: its
/// seed is the chain's head, which the ceremony moves).
#[test]
fn a_secret_election_counts_as_the_open_one_from_the_trustees_decryptions() {
    use councild::simulate::{Votes, run};
    let tz: Tz = "Europe/Istanbul".parse().unwrap();
    let start = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
    for cast in ["a=20,b=18,c=10,blank=5", "a=30,b=20", "a=10,b=12,blank=30"] {
        let votes = Votes::parse_counts(cast).unwrap();
        let counted = |w: &Workflow| {
            let report = run(w, &roster(), tz, BTreeMap::new(), &votes, start).unwrap();
            let rounds: Vec<String> = report
                .ballots
                .iter()
                .map(|b| serde_json::to_string(b).unwrap())
                .collect();
            (report.outcome, report.register_number, rounds)
        };
        let secret = counted(&workflow("chair-election"));
        assert_eq!(secret, counted(&open_chair_election()), "{cast}");
        assert!(secret.0.is_some(), "{cast}: the election ends");
    }
}

/// What a secret round refuses: a vote in the clear, and a decryption before the close;
/// and the election cannot open before the trustees have made its key.
#[test]
fn a_secret_round_refuses_clear_votes_and_early_decryptions() {
    let mut sim = Sim::new(workflow("chair-election"));
    sim.start(&[]);
    nominate(&mut sim, "a", "A").unwrap();
    assert_eq!(
        sim.apply(Event::CandidatesConfirmed {
            candidates: vec!["a".into()],
        }),
        Err(Rejection::NoElectionKey)
    );
    for m in ["TUR", "SAU", "MYS"] {
        let key = "11".repeat(32);
        sim.apply(Event::TrusteeKey {
            member: m.into(),
            key,
        })
        .unwrap();
    }
    assert_eq!(
        sim.apply(Event::TrusteeKey {
            member: "AFG".into(),
            key: "11".repeat(32)
        }),
        Err(Rejection::NotTrustee("AFG".into()))
    );
    assert!(matches!(
        sim.apply(Event::TrusteeReady {
            member: "TUR".into()
        }),
        Err(Rejection::TrusteeStep(_))
    ));
}

#[test]
fn nominations_wait_for_the_secretariat_and_ids_come_from_the_names() {
    let mut sim = Sim::new(open_chair_election());
    sim.start(&[]);
    assert_eq!(sim.apply(Event::MovedOn), Err(Rejection::ConfirmCandidates));
    let id = |sim: &Sim, name: &str| {
        let names = BTreeMap::from([("en".to_string(), name.to_string())]);
        councild::engine::candidate_id(sim.item(), &names)
    };
    assert_eq!(id(&sim, "Ayşe Öztürk"), "ayse_ozturk");
    assert_eq!(id(&sim, "Işık Łukasz-Ørsted"), "isik_lukasz_orsted");
    assert_eq!(id(&sim, "أحمد"), "candidate-1", "no Latin letters");
    assert_eq!(
        id(&sim, "Blank"),
        "candidate-1",
        "not the blank ballot's id"
    );
    nominate(&mut sim, "ayse_ozturk", "Ayşe Öztürk").unwrap();
    assert_eq!(id(&sim, "Ayşe Öztürk"), "candidate-2", "taken");
    // Past the deadline, nominations are refused; the list can still be confirmed.
    assert!(sim.advance());
    assert_eq!(sim.item().stage, "nominations");
    assert_eq!(
        nominate(&mut sim, "late", "Late"),
        Err(Rejection::NotTakingNominations)
    );
    sim.apply(Event::CandidatesConfirmed {
        candidates: vec!["ayse_ozturk".into()],
    })
    .unwrap();
    assert_eq!(sim.item().stage, "elect");
}

#[test]
fn an_elections_quorum_counts_ballots_not_who_voted_what() {
    let source = std::fs::read_to_string(format!(
        "{}/workflows/chair-election.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace(
        "      blank: true\n",
        "      blank: true\n      quorum: \"count(group: permanent) > 0\"\n",
    );
    let known = Known {
        templates: None,
        roster: None,
    };
    let err = definition::load(&source, &known).unwrap_err().to_string();
    assert!(err.contains("an election's quorum counts ballots"), "{err}");
    let fine = source.replace("count(group: permanent) > 0", "cast > 1/2 * eligible");
    assert!(definition::load(&fine, &known).is_ok());
}
