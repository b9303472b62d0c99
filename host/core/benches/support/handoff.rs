//! The bare hand-off: the floor of any worker-thread path (a call handed
//! to another thread and its answer handed back), shared by the `invoke`
//! and `go_echo` benchmarks.

use fnhost_api::testing::TestContext;

/// A Rust handler, called directly.
pub type Handler = fn(&[u8], &fnhost_api::Context) -> Result<Vec<u8>, fnhost_api::HandlerError>;

/// A thread that runs the handler for whoever sends it a payload, and
/// sends the result back: the bare hand-off. Both sides wait the way
/// fnhost's do (see `src/spin.rs`): busily for 4 µs, then yielding between
/// polls up to 50 µs, then blocking in the channel, so the comparison is of
/// the hand-off's bookkeeping, not of two waiting strategies.
pub struct Handoff {
    jobs: crossbeam_channel::Sender<Vec<u8>>,
    results: crossbeam_channel::Receiver<Vec<u8>>,
}

fn recv_spinning<T>(rx: &crossbeam_channel::Receiver<T>) -> Option<T> {
    use crossbeam_channel::TryRecvError;
    let start = std::time::Instant::now();
    loop {
        match rx.try_recv() {
            Ok(v) => return Some(v),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {
                let waited = start.elapsed();
                if waited > std::time::Duration::from_micros(50) {
                    return rx.recv().ok();
                }
                if waited > std::time::Duration::from_micros(4) {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
    }
}

impl Handoff {
    pub fn new(handler: Handler) -> Handoff {
        let (jobs, job_rx) = crossbeam_channel::bounded::<Vec<u8>>(1);
        let (result_tx, results) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let test = TestContext::new().user_data("NAME", "bench");
            while let Some(payload) = recv_spinning(&job_rx) {
                let out = handler(&payload, test.context()).unwrap();
                if result_tx.send(out).is_err() {
                    return;
                }
            }
        });
        Handoff { jobs, results }
    }

    pub fn call(&self, payload: &[u8]) -> Vec<u8> {
        self.jobs.send(payload.to_vec()).unwrap();
        recv_spinning(&self.results).unwrap()
    }
}
