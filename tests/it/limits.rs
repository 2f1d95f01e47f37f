//! What the network can do to the daemon: floods of idle connections, half-sent requests,
//! SMTP smuggling, tokens that are not text, a clock set before 1970.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::{Council, Daemon, ROSTER, TOKEN};
use councild::http::{HEADER_TIMEOUT, WRITE_TIMEOUT};

/// How long any listener may take to answer while it is flooded.
const PROMPT: Duration = Duration::from_secs(1);
/// The slack a loaded machine may need on top of the daemon's timeouts.
const SLACK: Duration = Duration::from_secs(5);

/// A daemon with replies by mail on, an open ballot, and the links to it.
struct Ballot {
    council: Council,
    daemon: Daemon,
    inbound: SocketAddr,
    /// The ballot page of A. Head.
    link: String,
    /// A. Head's reply address, `ballot+TOKEN@example.org`.
    reply_to: String,
    item: String,
}

async fn open_ballot() -> Ballot {
    let council = Council::new(ROSTER, &[("quick.yaml", crate::cycle::QUICK)]);
    let port = crate::harness::free_port();
    let inbound: SocketAddr = ([127, 0, 0, 1], port).into();
    let daemon = Daemon::start(
        council.path(),
        &[("COUNCILD_INBOUND_LISTEN", &inbound.to_string())],
    );
    let item = daemon
        .start_item("quick-adoption", json!({"title": "Regulation on limits"}))
        .await;
    let mail = council.ballot_mail("aaa.head@").await;
    let reply_to = mail.reply_to.clone().expect("a reply address");
    let reply_to = reply_to
        .trim_start_matches(|c| c != '<')
        .trim_matches(['<', '>'])
        .to_string();
    let link = mail.link().unwrap();
    Ballot {
        council,
        daemon,
        inbound,
        link,
        reply_to,
        item,
    }
}

/// Raises this process's soft limit on open files to its hard limit, and sets the
/// daemon's to the usual 1,024 (both soft and hard), so that a flood of a thousand
/// connections would take the last of its descriptors.
fn set_open_file_limits(daemon: &Daemon, needed: libc::rlim_t) {
    let mut mine = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit, setrlimit and prlimit read or write only the structs given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut mine), 0);
        mine.rlim_cur = mine.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &mine), 0);
        let usual = libc::rlimit {
            rlim_cur: 1_024,
            rlim_max: 1_024,
        };
        let pid = daemon.pid() as libc::pid_t;
        assert_eq!(
            libc::prlimit(pid, libc::RLIMIT_NOFILE, &usual, std::ptr::null_mut()),
            0,
            "prlimit on the daemon"
        );
    }
    assert!(
        mine.rlim_cur >= needed,
        "this test needs {needed} open files; the hard limit is {}",
        mine.rlim_cur
    );
}

/// Opens `count` connections to `to` from the loopback address `from` and keeps them.
/// Those the daemon closes at once (over its caps) are kept too; a connection the kernel
/// keeps waiting (its accept queue full) is given up after a few seconds.
async fn flood(from: [u8; 4], to: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut open = Vec::with_capacity(count);
    let mut waited = 0;
    while open.len() < count && waited < 10 {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind((from, 0).into()).unwrap();
        match tokio::time::timeout(Duration::from_secs(5), socket.connect(to)).await {
            Ok(Ok(stream)) => open.push(stream),
            Ok(Err(e)) => panic!("connecting to {to}: {e}"),
            Err(_) => waited += 1,
        }
    }
    open
}

#[tokio::test]
async fn a_thousand_idle_connections_leave_every_listener_answering() {
    let b = open_ballot().await;
    set_open_file_limits(&b.daemon, 4_096);
    let public: SocketAddr = b
        .daemon
        .public
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    // From other loopback addresses than the delegate's, as from other machines.
    let idle_http = flood([127, 0, 0, 2], public, 1_000).await;
    let idle_smtp = flood([127, 0, 0, 3], b.inbound, 300).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let http = reqwest::Client::builder().timeout(PROMPT).build().unwrap();
    let started = Instant::now();
    let healthz = http.get(format!("{}/healthz", b.daemon.admin)).send().await;
    assert!(
        healthz.is_ok_and(|r| r.status() == 200),
        "/healthz while flooded, after {:?}",
        started.elapsed()
    );
    let page = http.get(&b.link).send().await;
    assert!(
        page.is_ok_and(|r| r.status() == 200),
        "the ballot page while flooded"
    );
    let vote = http.post(&b.link).form(&[("choice", "yes")]).send().await;
    assert!(
        vote.is_ok_and(|r| r.status() == 200),
        "a vote while flooded"
    );
    let greeting = tokio::time::timeout(PROMPT, async {
        let mut smtp = BufReader::new(TcpStream::connect(b.inbound).await?);
        let mut line = String::new();
        smtp.read_line(&mut line).await.map(|_| line)
    })
    .await;
    assert!(
        matches!(&greeting, Ok(Ok(l)) if l.starts_with("220")),
        "the inbound greeting while flooded: {greeting:?}"
    );
    let metrics = http
        .get(format!("{}/metrics", b.daemon.admin))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for listener in ["public", "inbound"] {
        let refused = format!("councild_connections_refused_total{{listener=\"{listener}\"}}");
        assert!(metrics.contains(&refused), "{listener}: {metrics}");
    }
    assert_eq!(b.daemon.item(&b.item).await["ballots"][0]["cast"], 1);

    // From many addresses at once, each within its share: the public listener fills to its
    // cap, and the admin side still answers. Watched while the floods go on: each idle
    // connection is closed after HEADER_TIMEOUT, so on a loaded machine the first ones
    // may be gone by the time the last ones connect.
    let mut floods = tokio::task::JoinSet::new();
    for last in 10..30 {
        floods.spawn(flood([127, 0, 0, last], public, 50));
    }
    let full = "councild_connections_open{listener=\"public\"} 512";
    crate::harness::until("the public listener full", HEADER_TIMEOUT, async || {
        let metrics = http
            .get(format!("{}/metrics", b.daemon.admin))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("/metrics with the public listener full")
            .text()
            .await
            .unwrap();
        if metrics.contains(full) {
            Ok(())
        } else {
            Err(metrics
                .lines()
                .filter(|l| l.starts_with("councild_connections_open"))
                .collect::<Vec<_>>()
                .join(", "))
        }
    })
    .await;
    let many = floods.join_all().await;
    drop((idle_http, idle_smtp, many));
}

/// Reads from `stream` until the daemon closes it; how long that took, or `None` if it
/// stays open for `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
async fn a_connection_that_sends_half_a_request_or_nothing_is_closed() {
    let council = Council::new(ROSTER, &[]);
    let daemon = council.start();
    let public = daemon.public.trim_start_matches("http://");
    let mut half = TcpStream::connect(public).await.unwrap();
    half.write_all(b"GET /ballot/x HTTP/1.1\r\nHost: councild\r\n")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(daemon.admin.trim_start_matches("http://"))
        .await
        .unwrap();
    let within = HEADER_TIMEOUT + SLACK;
    let (half, silent) = tokio::join!(
        closed_within(&mut half, within),
        closed_within(&mut silent, within)
    );
    assert!(half.is_some(), "half a header still open after {within:?}");
    assert!(
        silent.is_some(),
        "a silent connection still open after {within:?}"
    );
}

/// A client that sends requests and never reads the answers: once its answers back up,
/// the daemon closes the connection after [`WRITE_TIMEOUT`] instead of holding it (and its
/// slot under the connection cap) for as long as the client likes.
#[tokio::test]
async fn a_connection_that_stops_reading_its_answers_is_closed() {
    const REQUESTS: usize = 100_000;
    let council = Council::new(ROSTER, &[]);
    let daemon = council.start();
    let admin: SocketAddr = daemon.admin.trim_start_matches("http://").parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    // A small, fixed receive window, so that the answers back up at once.
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(admin).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let asking = tokio::spawn(async move {
        let request = b"GET /healthz HTTP/1.1\r\nHost: councild\r\n\r\n".repeat(1_000);
        for _ in 0..REQUESTS / 1_000 {
            if write.write_all(&request).await.is_err() {
                return;
            }
        }
        // Kept open: the daemon, not the client, must end this.
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
    tokio::time::sleep(WRITE_TIMEOUT + SLACK).await;
    let mut heard = Vec::new();
    let read_all = tokio::time::timeout(HEADER_TIMEOUT + SLACK, read.read_to_end(&mut heard));
    let ended = read_all.await;
    asking.abort();
    let answers = heard
        .windows(15)
        .filter(|w| w == b"HTTP/1.1 200 OK")
        .count();
    assert!(
        answers < REQUESTS,
        "all {answers} answers were kept for a client that did not read them"
    );
    assert!(
        ended.is_ok(),
        "the connection was still open {:?} after the answers backed up ({answers} read)",
        WRITE_TIMEOUT + HEADER_TIMEOUT + SLACK * 2
    );
}

#[tokio::test]
async fn a_token_that_is_not_utf8_gets_the_link_not_valid_page() {
    let council = Council::new(ROSTER, &[]);
    let daemon = council.start();
    for path in ["/ballot/%FF%FE", "/ballot/%C3"] {
        let (status, body) = daemon.get(&format!("{}{path}", daemon.public)).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains("Link not valid"), "{path}: {body}");
        let (status, body) = daemon
            .vote(&format!("{}{path}", daemon.public), "yes")
            .await;
        assert_eq!(status, 404, "POST {path}: {body}");
        assert!(body.contains("Link not valid"), "POST {path}: {body}");
    }
}

#[tokio::test]
async fn a_clock_offset_before_1970_or_unreadable_stops_the_start() {
    let council = Council::new(ROSTER, &[]);
    for (offset, says) in [("-3000w", "before 1970"), ("-60y", "bad duration")] {
        let env = [("COUNCILD_CLOCK_OFFSET", offset)];
        let log = match Daemon::try_start(council.path(), &env) {
            Ok(_) => panic!("councild started with COUNCILD_CLOCK_OFFSET={offset}"),
            Err(log) => log,
        };
        assert!(
            log.contains("COUNCILD_CLOCK_OFFSET") && log.contains(says),
            "{offset}: {log}"
        );
    }
}

/// A raw SMTP session, to send what no well-behaved client would.
struct Smtp(BufReader<TcpStream>);

impl Smtp {
    /// Connects, reads the greeting and gets through EHLO, MAIL FROM and RCPT TO `to`.
    async fn to(addr: SocketAddr, to: &str) -> Smtp {
        let mut s = Smtp(BufReader::new(TcpStream::connect(addr).await.unwrap()));
        assert!(s.answer().await.starts_with("220"));
        for command in [
            "EHLO test".to_string(),
            "MAIL FROM:<aaa.head@example.org>".into(),
            format!("RCPT TO:<{to}>"),
        ] {
            let answer = s.say(format!("{command}\r\n").as_bytes()).await;
            assert!(answer.starts_with("250"), "{command}: {answer}");
        }
        s
    }

    /// Sends `bytes` and reads the answer.
    async fn say(&mut self, bytes: &[u8]) -> String {
        self.0.get_mut().write_all(bytes).await.unwrap();
        self.answer().await
    }

    /// One answer, every line of it (`250-…` lines then `250 …`); empty if closed.
    async fn answer(&mut self) -> String {
        let mut answer = String::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(Duration::from_secs(10), self.0.read_line(&mut line));
            match read.await {
                Ok(Ok(0)) => return answer,
                Ok(Ok(_)) => answer.push_str(&line),
                Ok(Err(e)) => panic!("reading an SMTP answer: {e}"),
                Err(_) => panic!("no SMTP answer in 10 s; so far: {answer:?}"),
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return answer;
            }
        }
    }
}

#[tokio::test]
async fn smtp_smuggling_and_long_lines_never_end_a_message_early() {
    let b = open_ballot().await;
    // The vote the smuggled message would cast, after the first message's bare `LF . LF`
    // (and then `LF . CRLF`, `CRLF . LF`: only `CRLF . CRLF` ends a message).
    let smuggled = format!(
        "MAIL FROM:<aaa.head@example.org>\r\nRCPT TO:<{}>\r\nDATA\r\nSubject: Re\r\n\r\nyes\r\n",
        b.reply_to
    );
    for end in ["\n.\n", "\n.\r\n", "\r\n.\n"] {
        let mut smtp = Smtp::to(b.inbound, &b.reply_to).await;
        assert!(smtp.say(b"DATA\r\n").await.starts_with("354"));
        let message = format!("Subject: Re\r\n\r\nmaybe{end}{smuggled}.\r\n");
        let answer = smtp.say(message.as_bytes()).await;
        assert!(
            answer.starts_with("500") && answer.contains("bare LF"),
            "{end:?}: {answer}"
        );
        assert!(smtp.say(b"QUIT\r\n").await.starts_with("221"), "{end:?}");
    }

    // A line over 1,000 octets, in a message: refused once the message ends, however the
    // long line is cut; and as a command.
    let mut smtp = Smtp::to(b.inbound, &b.reply_to).await;
    assert!(smtp.say(b"DATA\r\n").await.starts_with("354"));
    let long = format!(
        "Subject: Re\r\n\r\n{}.\r\n{smuggled}.\r\n",
        "a".repeat(2_050)
    );
    let answer = smtp.say(long.as_bytes()).await;
    assert!(
        answer.starts_with("500") && answer.contains("line too long"),
        "{answer}"
    );
    let answer = smtp
        .say(format!("NOOP {}\r\n", "b".repeat(1_200)).as_bytes())
        .await;
    assert!(answer.contains("line too long"), "{answer}");
    assert!(smtp.say(b"QUIT\r\n").await.starts_with("221"));

    // A message over the size limit is read to its end, as data, and refused.
    let mut smtp = Smtp::to(b.inbound, &b.reply_to).await;
    assert!(smtp.say(b"DATA\r\n").await.starts_with("354"));
    let line = format!("{}\r\n", "c".repeat(998));
    let mut big = "Subject: Re\r\n\r\nyes\r\n".to_string();
    big.push_str(&line.repeat(300));
    big.push_str(&smuggled);
    big.push_str(".\r\n");
    let answer = smtp.say(big.as_bytes()).await;
    assert!(answer.starts_with("552"), "{answer}");
    assert!(smtp.say(b"QUIT\r\n").await.starts_with("221"));

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        b.daemon.item(&b.item).await["ballots"][0]["cast"],
        0,
        "no smuggled vote"
    );
    drop(b.council);
}

/// Votes from one address over many links (the sample council's 55 voting members): after
/// the address's burst every further vote is told to wait, whichever link it uses. Behind
/// a trusted proxy the forwarded address is the one that counts; from any other peer a
/// forged `X-Forwarded-For` changes nothing.
#[tokio::test]
async fn one_address_voting_over_many_links_is_told_to_wait() {
    let roster =
        std::fs::read_to_string(crate::harness::repo().join("config/council.yaml")).unwrap();
    let open = crate::cycle::QUICK.replace("close: when_all_voted", "close: at_deadline");
    let council = Council::new(&roster, &[("quick.yaml", &open)]);
    // This address is a proxy to the first daemon, and nobody in particular to the second.
    for trusted in ["127.0.0.1", "192.0.2.1"] {
        let daemon = Daemon::start(
            council.path(),
            &[("COUNCILD_PUBLIC_TRUSTED_PROXIES", trusted)],
        );
        let item = daemon
            .start_item("quick-adoption", json!({"title": "Regulation on limits"}))
            .await;
        let links: Vec<String> = crate::harness::until(
            "a ballot mail to each of the 55 voting members",
            Duration::from_secs(60),
            async || {
                let links: Vec<String> = council
                    .mails()
                    .into_iter()
                    .filter_map(|m| m.link())
                    .collect();
                if links.len() >= 55 {
                    Ok(links)
                } else {
                    Err(links.len())
                }
            },
        )
        .await;
        let http = reqwest::Client::new();
        let vote = async |n: usize, from: &str| {
            let resp = http
                .post(&links[n % 55])
                .header("x-forwarded-for", from)
                .form(&[("choice", ["yes", "no"][(n / 55) % 2])])
                .send()
                .await
                .unwrap();
            resp.status().as_u16()
        };
        // Three votes per link from one address, past its burst of 120.
        let started = Instant::now();
        let mut taken = 0;
        for n in 0..165 {
            match vote(n, "198.51.100.7").await {
                200 => taken += 1,
                429 => {}
                status => panic!("vote {n}: {status} (proxy {trusted})"),
            }
        }
        // The bucket refills by two a second while the votes go in.
        let most = 120 + 2 * started.elapsed().as_secs() as usize + 2;
        assert!(
            (110..=most).contains(&taken),
            "{taken} of 165 votes taken, at most {most} expected (proxy {trusted}) for {item}"
        );
        // Other forwarded addresses: clients of their own only behind the trusted proxy.
        let mut others = 0;
        for n in 0..10 {
            if vote(n, &format!("198.51.100.{}", 10 + n)).await == 200 {
                others += 1;
            }
        }
        if trusted == "127.0.0.1" {
            assert_eq!(others, 10, "forwarded addresses behind the trusted proxy");
        } else {
            assert!(others <= 3, "{others} of 10 forged addresses were believed");
        }
        drop(daemon);
        std::fs::remove_dir_all(council.path().join("data")).unwrap();
    }
}
