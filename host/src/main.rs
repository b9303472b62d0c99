//! The `fnhost` binary: a thin layer over the library's [`fnhost::cli`].

fn main() {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,fnhost::function=off"),
    )
    .format_timestamp_millis()
    .init();
    std::process::exit(fnhost::cli::run(std::env::args_os()));
}
