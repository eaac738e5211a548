//! Sign-in throttling as clients meet it: a stranger's failures slow down the stranger's
//! address only, access tokens are never refused, concurrent guesses are counted one by one,
//! and an honest sign-in stays quick while made-up names flood the token service.

use crate::support::{client, fresh_loopback, Creds, Server, Snapshot, PASSWORD};
use crate::world::{Pat, World};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// One sign-in of `name` with `secret` to `GET /token` from `from`.
async fn sign_in(server: &Server, from: &reqwest::Client, name: &str, secret: &str) -> Snapshot {
    let resp = Creds::basic(name, secret)
        .apply(from.get(server.url("/token?service=berth")))
        .send()
        .await
        .expect("request");
    Snapshot::of(resp).await
}

/// Sends `count` sign-ins of `name` with a wrong password from `from`, one after another.
async fn fail_sign_ins(
    server: &Server,
    from: &reqwest::Client,
    name: &str,
    count: usize,
) -> Vec<Snapshot> {
    let mut answers = Vec::new();
    for _ in 0..count {
        answers.push(sign_in(server, from, name, "guessing wrong").await);
    }
    answers
}

/// The same address every call with the same `n` (127.0.0.n: outside `fresh_loopback`'s
/// 127.0.x.y with x ≥ 1).
fn loopback(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

#[tokio::test]
async fn a_strangers_failures_slow_down_the_strangers_address_only() {
    let world = World::build().await;
    let server = &world.server;

    // From 127.0.0.2, five failures are answered at once; then the address waits, a
    // second after the last failure, then two, then four (short waits are served by holding
    // the answer back), even with the right password.
    let stranger = client(Some(loopback(2)));
    // Each free failure is answered without the shortest hold (1 s); timing each one on
    // its own keeps a loaded machine's slow password checks from adding up to a hold.
    for attempt in 1..=5 {
        let started = std::time::Instant::now();
        let answer = sign_in(server, &stranger, "alice", "guessing wrong").await;
        assert_eq!(answer.status, 401, "{answer:?}");
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "free failure {attempt} was held: {:?}",
            started.elapsed()
        );
    }
    let held = std::time::Instant::now();
    let answers = fail_sign_ins(server, &stranger, "alice", 2).await;
    assert!(answers.iter().all(|a| a.status == 401), "{answers:?}");
    assert!(
        held.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        held.elapsed()
    );
    let held = std::time::Instant::now();
    let right_password = sign_in(server, &stranger, "alice", PASSWORD).await;
    assert_eq!(right_password.status, 200, "{right_password:?}");
    assert!(
        held.elapsed() >= Duration::from_millis(3500),
        "{:?}",
        held.elapsed()
    );
    // Alice from 127.0.0.3 is not affected, however she signs in.
    let owner = client(Some(loopback(3)));
    let held = [
        Creds::basic("alice", PASSWORD).apply(owner.get(server.url("/token?service=berth"))),
        owner
            .post(server.url("/token"))
            .body(crate::support::form(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ])),
        Creds::basic("alice", PASSWORD).apply(owner.get(server.url("/v2/"))),
    ];
    for request in held {
        let answer = Snapshot::of(request.send().await.expect("request")).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    // Her access token works even from the address that is slowed down: tokens carry 256
    // random bits, and a NAT or proxy may put her CI behind the stranger's address.
    for path in ["/token?service=berth", "/v2/"] {
        let resp = world
            .pat(Pat::Read)
            .apply(stranger.get(server.url(path)))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn throttling_does_not_reveal_which_accounts_exist() {
    let world = World::build().await;
    let server = &world.server;
    let mut sequences = HashMap::new();
    for name in ["alice", "nobody-here"] {
        let from = client(Some(fresh_loopback()));
        sequences.insert(name, fail_sign_ins(server, &from, name, 6).await);
    }
    // The wait may differ by the second the requests took.
    let strip = |answers: &[Snapshot]| -> Vec<(u16, Option<String>)> {
        answers.iter().map(|a| (a.status, a.error_code())).collect()
    };
    assert_eq!(strip(&sequences["alice"]), strip(&sequences["nobody-here"]));
    assert_eq!(sequences["alice"][0], sequences["nobody-here"][0]);

    // One address guessing across many accounts is slowed down for every account.
    let guesser = client(Some(fresh_loopback()));
    let answers = fail_sign_ins(server, &guesser, "victim1", 3).await;
    assert!(answers.iter().all(|a| a.status == 401), "{answers:?}");
    let answers = fail_sign_ins(server, &guesser, "victim2", 2).await;
    assert!(answers.iter().all(|a| a.status == 401), "{answers:?}");
    let held = Instant::now();
    let answer = sign_in(server, &guesser, "bob", PASSWORD).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        held.elapsed() >= Duration::from_millis(900),
        "{:?}",
        held.elapsed()
    );
}

/// Sends `count` wrong-password sign-ins for `name` at once, from `from(i)`, and returns
/// how many were checked (answered 401) and how many were told to wait (429).
async fn concurrent_failures(
    server: &Server,
    name: &str,
    count: usize,
    from: impl Fn(usize) -> reqwest::Client,
) -> (usize, usize) {
    let requests: Vec<_> = (0..count)
        .map(|i| {
            Creds::basic(name, &format!("guess {i}"))
                .apply(from(i).get(server.url("/token?service=berth")))
                .send()
        })
        .collect();
    let answers = futures_util::future::join_all(requests).await;
    let mut checked = 0;
    let mut waited = 0;
    for answer in answers {
        match answer.expect("request").status().as_u16() {
            401 => checked += 1,
            429 => waited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    (checked, waited)
}

/// How many delays of 1 s, 2 s, 4 s … fit one after another into `elapsed`.
fn delays_within(elapsed: Duration) -> usize {
    let mut total = Duration::ZERO;
    let mut delay = Duration::from_secs(1);
    let mut count = 0;
    while total + delay <= elapsed {
        total += delay;
        delay *= 2;
        count += 1;
    }
    count
}

#[tokio::test]
async fn concurrent_guesses_are_counted_before_they_are_checked() {
    let server = Server::start().await;
    server.user("alice", false).await;
    let trusted = client(Some(fresh_loopback()));
    assert_eq!(
        sign_in(&server, &trusted, "alice", PASSWORD).await.status,
        200
    );

    // 200 at once from one address: its five free failures, and one more per delay (1 s,
    // then 2 s, 4 s …) should the burst take that long to arrive.
    let one = client(Some(fresh_loopback()));
    let started = Instant::now();
    let (checked, waited) = concurrent_failures(&server, "alice", 200, |_| one.clone()).await;
    let budget = 5 + delays_within(started.elapsed());
    assert!(
        checked <= budget,
        "{checked} passwords checked from one address, budget {budget}"
    );
    assert_eq!(checked + waited, 200);

    // 200 at once from 200 addresses: ten addresses may fail freely, then the account
    // allows one check, and one more per growing delay.
    let clients: Vec<_> = (0..200).map(|_| client(Some(fresh_loopback()))).collect();
    let started = Instant::now();
    let (checked, waited) =
        concurrent_failures(&server, "alice", 200, |i| clients[i].clone()).await;
    let budget = 11 + delays_within(started.elapsed());
    assert!(
        checked <= budget,
        "{checked} passwords checked from 200 addresses, budget {budget}"
    );
    assert_eq!(checked + waited, 200);

    // Her password from the address she signed in from still gets in at once.
    let started = Instant::now();
    assert_eq!(
        sign_in(&server, &trusted, "alice", PASSWORD).await.status,
        200
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// How long an honest sign-in takes while `flood` sign-ins with made-up names, each from an
/// address of its own, arrive at once; also prints the throughput of honest sign-ins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_sign_in_stays_quick_during_a_flood_of_unknown_names() {
    const FLOOD: usize = 400;
    let server = Server::start().await;
    server.user("alice", false).await;

    // Throughput: 40 honest sign-ins, 8 at a time, each from its own address.
    let honest: Vec<_> = (0..40).map(|_| client(Some(fresh_loopback()))).collect();
    let started = Instant::now();
    for batch in honest.chunks(8) {
        let answers = futures_util::future::join_all(
            batch
                .iter()
                .map(|from| sign_in(&server, from, "alice", PASSWORD)),
        )
        .await;
        assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    }
    let throughput = honest.len() as f64 / started.elapsed().as_secs_f64();

    let flooders: Vec<_> = (0..FLOOD).map(|_| client(Some(fresh_loopback()))).collect();
    let flood_started = Instant::now();
    let flood = tokio::spawn({
        let requests: Vec<_> = flooders
            .iter()
            .enumerate()
            .map(|(i, from)| {
                Creds::basic(&format!("nobody{i}"), "guessing")
                    .apply(from.get(server.url("/token?service=berth")))
                    .send()
            })
            .collect();
        async move { futures_util::future::join_all(requests).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let from = client(Some(fresh_loopback()));
    let started = Instant::now();
    let answer = sign_in(&server, &from, "alice", PASSWORD).await;
    let honest_latency = started.elapsed();
    let answers = flood.await.expect("flood");
    let flood_took = flood_started.elapsed();
    let refused = answers
        .iter()
        .filter(|a| a.as_ref().is_ok_and(|a| a.status() == 401))
        .count();
    println!(
        "sign-in throughput {throughput:.1}/s; honest sign-in during a flood of {FLOOD} \
         unknown names: {:.3} s; flood answered in {:.2} s ({refused} answered 401)",
        honest_latency.as_secs_f64(),
        flood_took.as_secs_f64()
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        honest_latency < Duration::from_secs(1),
        "the honest sign-in took {honest_latency:?}"
    );
}

#[tokio::test]
async fn wrong_tokens_slow_their_address_down_and_valid_ones_still_work() {
    let world = World::build().await;
    let server = &world.server;
    let from = client(Some(fresh_loopback()));
    let mut statuses = Vec::new();
    for i in 0..8 {
        let secret = format!("berth_pat_{i:064}");
        statuses.push(
            sign_in(server, &from, &format!("name{i}"), &secret)
                .await
                .status,
        );
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
    let resp = world
        .pat(Pat::Read)
        .apply(from.get(server.url("/token?service=berth")))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200, "a valid token is never throttled");
}
