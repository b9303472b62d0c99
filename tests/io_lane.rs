//! The I/O-thread lane: a handler runs on the caller's executor only after
//! its probation, within the lane's slots; a lane call that hangs is answered
//! at its deadline by the watchdog, and sends its function back to worker
//! threads. The executor here is a few plain threads; `fnhost serve` uses its
//! tokio runtime the same way (tests/sdk/test_http.py covers that).
// Tests: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use fnhost::dispatch::{start_here, start_on, AtDeadline, Started};
use fnhost::dispatch::{IoLane, Job, PROBATION};
use fnhost::{error_type, FunctionConfig, InvokeResult, Route, Runtime};
use fnhost_e2e::{eventually, plugin_dir, runtime};

/// A lane of `slots` over an executor of `threads` threads; counts the jobs
/// the executor ran.
fn lane(slots: usize, threads: usize) -> (IoLane, Arc<AtomicUsize>) {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let ran = Arc::new(AtomicUsize::new(0));
    for i in 0..threads {
        let (rx, ran) = (Arc::clone(&rx), Arc::clone(&ran));
        std::thread::Builder::new()
            .name(format!("test-executor-{i}"))
            .spawn(move || loop {
                let job = rx.lock().unwrap().recv();
                match job {
                    Ok(job) => {
                        ran.fetch_add(1, Ordering::SeqCst);
                        job();
                    }
                    Err(_) => return,
                }
            })
            .unwrap();
    }
    let lane = IoLane::new(slots, move |job| tx.send(job).unwrap()).unwrap();
    (lane, ran)
}

/// Where a call ran, and its result.
#[derive(Debug, PartialEq)]
enum Ran {
    Lane,
    Worker,
}

/// Starts a call on `lane` (or a worker thread) and waits for it as
/// `fnhost serve` does: until it completes or, on the lane, until the
/// watchdog wakes the caller at the deadline.
fn call(route: &Route, lane: &IoLane, payload: &[u8]) -> (Ran, InvokeResult, Duration) {
    let started = Instant::now();
    match start_on(route, payload.to_vec(), Some(lane)).unwrap() {
        Started::Running(pending) => {
            let ran = if pending.deadline_watched() {
                Ran::Lane
            } else {
                Ran::Worker
            };
            let (tx, rx) = mpsc::channel();
            pending.on_complete(move || {
                let _ = tx.send(());
            });
            if ran == Ran::Lane {
                // No timer of our own: the watchdog must wake us.
                rx.recv_timeout(Duration::from_secs(30))
                    .expect("the lane's watchdog wakes the caller at the deadline");
            } else {
                let _ =
                    rx.recv_timeout(pending.deadline().saturating_duration_since(Instant::now()));
            }
            let result = pending.finish();
            (ran, result, started.elapsed())
        }
        // No idle instance (one is held by a runaway): a new one is created
        // on the blocking path.
        Started::MustBlock => (
            Ran::Worker,
            route.invoke(payload).unwrap(),
            started.elapsed(),
        ),
        Started::Done(_) | Started::AnsweredAtDeadline => {
            panic!("an in-process call does not complete in start_on")
        }
    }
}

fn deploy(rt: &Runtime, entry: &str, name: &str, timeout: Duration) -> Route {
    rt.registry()
        .deploy(
            FunctionConfig::new(entry, plugin_dir())
                .name(name)
                .timeout(timeout),
        )
        .unwrap();
    // The first call creates the instance (a blocking path).
    rt.registry().invoke(name, b"0").unwrap();
    rt.registry().resolve(name).unwrap()
}

/// Calls until 3 calls in a row run on the lane (a handler's first call on
/// a thread can be slow, touching its thread-locals, and disqualify it once
/// more); returns how many ran on workers.
fn qualify(route: &Route, lane: &IoLane, payload: &[u8]) -> usize {
    let (mut on_workers, mut on_lane) = (0, 0);
    while on_lane < 3 {
        let (ran, r, _) = call(route, lane, payload);
        assert!(r.outcome.is_success(), "{:?}", r.outcome);
        if ran == Ran::Lane {
            on_lane += 1;
        } else {
            on_lane = 0;
            on_workers += 1;
        }
        assert!(on_workers < 20 * PROBATION as usize, "never qualified");
    }
    on_workers
}

/// A call of `payload` that runs on the lane, after qualifying with
/// `short`: a qualified handler can lose its place again in between when
/// its last short call was preempted for over 100 µs (a loaded machine).
/// `pause`: idle time before the call; `settle` runs after an attempt that
/// landed on a worker instead.
fn on_lane(
    route: &Route,
    lane: &IoLane,
    (short, payload): (&[u8], &[u8]),
    pause: Duration,
    settle: impl Fn(),
) -> (InvokeResult, Duration) {
    for _ in 0..5 {
        qualify(route, lane, short);
        // Fixed wait: the caller's idle time before the call (the watchdog may fall asleep).
        std::thread::sleep(pause);
        let (ran, r, took) = call(route, lane, payload);
        if ran == Ran::Lane {
            return (r, took);
        }
        settle();
    }
    panic!("the call never ran on the lane");
}

/// The executor ran every lane call and nothing else, but for the
/// watchdog's nudges (empty jobs, when a preempted call ran past 100 µs;
/// one may still be on its way).
fn assert_ran_lane_calls_only(lane: &IoLane, ran: &AtomicUsize) {
    let stats = lane.stats();
    let ran = ran.load(Ordering::SeqCst) as u64;
    assert!(
        stats.runs <= ran && ran <= stats.runs + stats.nudges,
        "the executor ran {ran} jobs for {stats:?}"
    );
}

#[test]
fn a_proven_short_handler_runs_on_the_lane_with_the_same_results() {
    let rt = runtime();
    let (lane, ran) = lane(1, 2);
    let echo = deploy(&rt, "echo.Handler", "lane-echo", Duration::from_secs(3));
    // The deploy's first call counts too: at least PROBATION - 1 more.
    let on_workers = qualify(&echo, &lane, b"probation");
    assert!(on_workers >= PROBATION as usize - 1, "{on_workers}");
    let before = lane.stats();
    assert_ran_lane_calls_only(&lane, &ran);
    // (A call preempted for over 100 µs sends it back for a probation: on
    // a loaded machine it may take more than 50 calls to get 50 on the lane.)
    let mut on_lane = 0;
    for i in 0..2000 {
        let payload = format!("call {i}");
        let (where_, r, _) = call(&echo, &lane, payload.as_bytes());
        assert_eq!(r.outcome.body_bytes(), payload.as_bytes());
        assert_eq!(r.request_id.len(), 36);
        assert!(r.summary.billing_duration_ms >= 1);
        on_lane += (where_ == Ran::Lane) as u64;
        if on_lane == 50 {
            break;
        }
    }
    let stats = lane.stats();
    assert_eq!(stats.runs, before.runs + 50);
    assert_ran_lane_calls_only(&lane, &ran);
    assert_eq!((stats.strikes, stats.running), (0, 0));
    assert_eq!(rt.stats().runaway_invocations, 0);
}

#[test]
fn a_hanging_lane_call_is_answered_at_its_deadline_and_its_function_leaves_the_lane() {
    let rt = runtime();
    let (lane, _) = lane(1, 2);
    let sleep = deploy(
        &rt,
        "misbehaving.Sleep",
        "lane-sleep",
        Duration::from_millis(300),
    );
    let runaways_end = || {
        assert!(
            eventually(Duration::from_secs(5), || {
                rt.stats().runaway_invocations == 0
            }),
            "the runaway ended: {:?}",
            rt.stats()
        );
    };
    // Idle long enough before the hanging call for the watchdog to sleep:
    // the call must wake it.
    let idle = Duration::from_millis(300);
    let (r, took) = on_lane(&sleep, &lane, (b"0", b"1500"), idle, runaways_end);
    let e = r.outcome.error().expect("a timeout");
    assert_eq!(e.error_type, error_type::TIMEOUT);
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1200),
        "answered after {took:?}, not at the 300 ms deadline"
    );
    let stats = lane.stats();
    assert_eq!((stats.deadline_answers, stats.strikes), (1, 1));
    assert_eq!(stats.running, 1, "the handler still holds its slot");
    assert_eq!(rt.stats().runaway_invocations, 1);

    // Struck: its calls go to worker threads, even once the handler returns.
    let (where_, r, _) = call(&sleep, &lane, b"0");
    assert_eq!(
        (where_, r.outcome.body_bytes()),
        (Ran::Worker, b"slept".to_vec())
    );
    runaways_end();
    assert_eq!(lane.stats().running, 0, "and freed its slot");
    assert_eq!(call(&sleep, &lane, b"0").0, Ran::Worker);
}

#[test]
fn calls_beyond_the_lane_slots_run_on_workers_and_repeat_strikes_lengthen_probation() {
    let rt = runtime();
    let lane = Arc::new(lane(1, 2).0);
    let slow = deploy(
        &rt,
        "misbehaving.Sleep",
        "lane-slow",
        Duration::from_secs(5),
    );
    let echo = deploy(&rt, "echo.Handler", "lane-echo2", Duration::from_secs(3));
    qualify(&slow, &lane, b"0");
    qualify(&echo, &lane, b"x");

    // A 1.5 s call holds the only slot: echo runs on a worker meanwhile.
    // (It was 400 ms: on a loaded machine the echo call came after the
    // slow one had ended, and ran on the free lane.)
    let thread = {
        let (slow, lane) = (slow.clone(), Arc::clone(&lane));
        std::thread::spawn(move || on_lane(&slow, &lane, (b"0", b"1500"), Duration::ZERO, || ()))
    };
    let until = Instant::now() + Duration::from_secs(5);
    while lane.stats().running == 0 && Instant::now() < until {
        std::thread::yield_now();
    }
    let (where_, r, _) = call(&echo, &lane, b"beside");
    assert_eq!(
        (where_, r.outcome.body_bytes()),
        (Ran::Worker, b"beside".to_vec())
    );
    let (r, took) = thread.join().unwrap();
    assert_eq!(r.outcome.body_bytes(), b"slept");
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    // The slot is free again: echo gets back on the lane.
    qualify(&echo, &lane, b"x");

    // `slow` was struck once (probation as at first); struck again soon
    // after, it needs twice the streak.
    assert!(qualify(&slow, &lane, b"0") >= PROBATION as usize);
    on_lane(&slow, &lane, (b"0", b"50"), Duration::ZERO, || ());
    assert_eq!(lane.stats().strikes, 2);
    let on_workers = qualify(&slow, &lane, b"0");
    assert!(on_workers >= 2 * PROBATION as usize, "{on_workers}");
}

/// A qualified handler run on its caller's thread ([`start_here`]):
/// the same results with no job for the executor; a hang there is answered
/// through the caller's callback, from the watchdog's thread, at the
/// deadline, while the caller's thread is still blocked in the handler.
#[test]
fn a_lane_call_on_its_callers_thread_is_answered_through_its_callback_at_the_deadline() {
    let rt = runtime();
    let (lane, ran) = lane(1, 2);
    let unused = || -> AtDeadline { Box::new(|r| panic!("answered at the deadline: {r:?}")) };

    let echo = deploy(&rt, "echo.Handler", "here-echo", Duration::from_secs(3));
    let mut here = 0;
    for i in 0..2000 {
        qualify(&echo, &lane, b"x");
        let jobs = ran.load(Ordering::SeqCst);
        let payload = format!("call {i}");
        match start_here(&echo, payload.clone(), &lane, unused()).unwrap() {
            Started::Done(r) => {
                assert_eq!(r.outcome.body_bytes(), payload.as_bytes());
                assert_eq!(r.request_id.len(), 36);
                assert_eq!(ran.load(Ordering::SeqCst), jobs, "no job for the executor");
                here += 1;
            }
            // Sent back to probation by a preempted call: on a worker.
            Started::Running(pending) => {
                assert!(!pending.deadline_watched());
                while !pending.has_completed() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                assert_eq!(pending.finish().outcome.body_bytes(), payload.as_bytes());
            }
            other => panic!("{other:?}"),
        }
        if here == 20 {
            break;
        }
    }
    assert_eq!(here, 20);
    assert_eq!(lane.stats().running, 0);

    let sleep = deploy(
        &rt,
        "misbehaving.Sleep",
        "here-sleep",
        Duration::from_millis(300),
    );
    let caller = std::thread::current().id();
    for _ in 0..5 {
        qualify(&sleep, &lane, b"0");
        let before = lane.stats();
        let timeouts = rt.stats().timeouts;
        let (tx, rx) = mpsc::channel();
        let started = Instant::now();
        let at_deadline: AtDeadline = Box::new(move |r: InvokeResult| {
            tx.send((r, started.elapsed(), std::thread::current().id()))
                .unwrap();
        });
        match start_here(&sleep, b"1500".to_vec(), &lane, at_deadline).unwrap() {
            Started::AnsweredAtDeadline => {
                let returned = started.elapsed();
                let (r, answered, thread) = rx.try_recv().expect("answered meanwhile");
                assert_ne!(thread, caller, "from another thread");
                assert_eq!(r.outcome.error().unwrap().error_type, error_type::TIMEOUT);
                assert!(
                    answered >= Duration::from_millis(300)
                        && answered < Duration::from_millis(1200),
                    "answered after {answered:?}, not at the 300 ms deadline"
                );
                assert!(returned >= Duration::from_millis(1500), "{returned:?}");
                let stats = lane.stats();
                assert_eq!(stats.deadline_answers, before.deadline_answers + 1);
                assert_eq!(stats.strikes, before.strikes + 1);
                assert!(stats.nudges > before.nudges, "the executor was nudged");
                assert_eq!(stats.running, 0, "the slot is free again");
                assert_eq!(rt.stats().runaway_invocations, 0, "the runaway has ended");
                assert_eq!(rt.stats().timeouts, timeouts + 1);
                return;
            }
            // Not on the lane (see above): a worker's timeout.
            Started::Running(pending) => {
                assert!(
                    eventually(Duration::from_secs(10), || pending.has_completed()),
                    "the handler did not return"
                );
                let _ = pending.finish();
            }
            other => panic!("{other:?}"),
        }
    }
    panic!("the hanging call never ran on the caller's thread");
}
