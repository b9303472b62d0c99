//! The `fnhost` binary: flags ([`cli`]), logging set-up and the allocator
//! choice over the `fnhost` and `fnhost-server` libraries.

mod author;
mod cli;
mod json_log;
mod lifecycle;
mod remote;
mod sandbox;
mod terminal;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

/// The server role allocates with mimalloc: with glibc's malloc, the HTTP
/// executor threads contend on arena locks (cross-thread frees; `perf`:
/// 20,000 futex waits a second in malloc/free under load). Worker processes
/// keep glibc's malloc: their memory limit (`RLIMIT_DATA`) is sized for it,
/// and mimalloc's address-space reservations would count against it.
#[global_allocator]
static ALLOCATOR: RoleAllocator = RoleAllocator;

struct RoleAllocator;

const UNDECIDED: u8 = 0;
const SYSTEM: u8 = 1;
const MIMALLOC: u8 = 2;
static CHOICE: AtomicU8 = AtomicU8::new(UNDECIDED);

/// Decided at the first allocation (before any memory exists to mismatch),
/// from the environment a worker process is started with.
#[inline]
fn use_system() -> bool {
    match CHOICE.load(Ordering::Relaxed) {
        SYSTEM => true,
        MIMALLOC => false,
        _ => {
            // SAFETY: `getenv` reads the environment without allocating; the
            // name is a NUL-terminated literal. Nothing modifies the
            // environment this early (the first allocation).
            let worker = unsafe { !libc::getenv(fnhost::worker::ENV.as_ptr()).is_null() };
            let choice = if worker { SYSTEM } else { MIMALLOC };
            // A racing first allocation computes the same choice.
            CHOICE.store(choice, Ordering::Relaxed);
            worker
        }
    }
}

// SAFETY: every call is forwarded to one allocator, the same for the whole
// process (fixed before the first allocation), so memory is always freed or
// resized by the allocator that gave it out.
unsafe impl GlobalAlloc for RoleAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if use_system() {
            System.alloc(layout)
        } else {
            mimalloc::MiMalloc.alloc(layout)
        }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if use_system() {
            System.alloc_zeroed(layout)
        } else {
            mimalloc::MiMalloc.alloc_zeroed(layout)
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if use_system() {
            System.dealloc(ptr, layout)
        } else {
            mimalloc::MiMalloc.dealloc(ptr, layout)
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if use_system() {
            System.realloc(ptr, layout, new_size)
        } else {
            mimalloc::MiMalloc.realloc(ptr, layout, new_size)
        }
    }
}

fn main() {
    // A worker process (its stderr is captured into invocation logs) runs
    // and exits here.
    fnhost::worker::main_if_worker();
    let default = "warn,fnhost::server=info,fnhost::cluster=info,fnhost::function=off";
    // `--log-format json` (the logger is chosen before the command line is
    // parsed, so that parsing itself may log).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let json = args
        .windows(2)
        .any(|w| w[0] == "--log-format" && w[1] == "json")
        || args.iter().any(|a| a == "--log-format=json");
    if json {
        json_log::init(default);
    } else {
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
            .format_timestamp_millis()
            .init();
    }
    if args.iter().skip(1).any(|a| a == "serve") {
        deeper_thread_stacks();
    }
    std::process::exit(cli::run(std::env::args_os()));
}

/// The default stack of the server's threads that do not choose their own
/// (lapin's I/O thread among them, which parses AMQP's nested header tables
/// by recursion: a table nested 3,000 deep overflowed 16 MB in a debug
/// build, and a broker passes headers up to its frame size, 128 KB by
/// default): 512 MB of address space instead of 2 MB. Only what a thread
/// touches becomes memory; address space is plentiful on 64-bit hosts. std reads `RUST_MIN_STACK` once, at the first spawn:
/// it is set, read by one thread, and removed again, so that no process
/// the server starts inherits it.
fn deeper_thread_stacks() {
    if std::env::var_os("RUST_MIN_STACK").is_some() {
        return;
    }
    // SAFETY: no other thread exists yet in this process (a server starts
    // its threads later, in `cli::run`), so nothing reads or writes the
    // environment concurrently.
    unsafe { std::env::set_var("RUST_MIN_STACK", (512usize << 20).to_string()) };
    let _ = std::thread::spawn(|| {}).join();
    // SAFETY: as above: still the only thread (the one spawned has ended).
    unsafe { std::env::remove_var("RUST_MIN_STACK") };
}
