//! The `fnhost` binary: a thin layer over the library's [`fnhost::cli`].

fn main() {
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(fnhost::isolation::WORKER_ARG))
    {
        // A worker process: its stderr is captured into invocation logs.
        std::process::exit(fnhost::isolation::worker_main());
    }
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,fnhost::function=off"),
    )
    .format_timestamp_millis()
    .init();
    std::process::exit(fnhost::cli::run(std::env::args_os()));
}
