//! The function's lifecycle on a server from the command line: `publish`,
//! `alias`, `trigger`, `functions`, `config` and `sign`, over
//! [`fnhost_author::lifecycle`]. Each signs like `deploy` (`--keys`, or
//! `FNHOST_ACCESS_KEY` and `FNHOST_SECRET_KEY`), prints for people or, with
//! `--output json`, the server's answer for programs.
//!
//! Exit status, as everywhere: 0 done, 1 the server refused or failed the
//! request (or did not answer), 2 usage (message on stderr).

use std::io::Write as _;
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use fnhost_author::lifecycle::{Failure, Functions, NewTrigger};
use serde_json::Value;

use crate::remote::{Output, OutputArgs, ServerArgs};
use crate::terminal::{for_stderr, for_stdout, json_for_stdout};

/// Exit status when the server refused or failed the request.
pub(crate) const EXIT_REFUSED: i32 = 1;

#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// The function.
    name: String,
    /// The version's description.
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AliasCommand {
    /// Create alias ALIAS of VERSION, or point it there; with --weight, a
    /// share of the calls goes to another version (a canary).
    Set(AliasSetArgs),
    /// List a function's aliases.
    List(NameArgs),
    /// Delete an alias.
    Delete(AliasDeleteArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AliasSetArgs {
    /// The function.
    name: String,
    /// The alias (letters, digits, `-`, `_`).
    alias: String,
    /// The version it names (`latest` or a published version).
    version: String,
    /// Send PERCENT of the alias's calls to VERSION instead (1-100; may
    /// repeat; the rest go to the alias's version).
    #[arg(long = "weight", value_name = "VERSION=PERCENT", value_parser = parse_weight)]
    weights: Vec<(String, u32)>,
    /// The alias's description.
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct AliasDeleteArgs {
    /// The function.
    name: String,
    /// The alias.
    alias: String,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct NameArgs {
    /// The function.
    name: String,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TriggerCommand {
    /// Add a trigger: `apig --path P [--method M]` (an HTTP route the
    /// server serves at P), `timer --schedule S [--user-event E]`,
    /// `redis --redis-url U --stream S [--group G] [--batch-size N]`, or an
    /// event source with its settings as the API names them: `kafka|rabbitmq|nats|mqtt
    /// --set KEY=VALUE...` (e.g. `rabbitmq --set url=amqp://... --set queue=orders`).
    Add(Box<TriggerAddArgs>),
    /// List a function's triggers.
    List(NameArgs),
    /// Enable a trigger (ACTIVE).
    Enable(TriggerIdArgs),
    /// Disable a trigger (DISABLED): it stays, and fires no more.
    Disable(TriggerIdArgs),
    /// Delete a trigger.
    Delete(TriggerIdArgs),
}

/// A trigger's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TriggerKind {
    /// An HTTP route: a request to PATH calls the function with an APIG event.
    Apig,
    /// A schedule: the function is called with a timer event.
    Timer,
    /// A Redis stream, read by a consumer group: batches of entries, at least once.
    Redis,
    /// Kafka topics, read by a consumer group (OPENSOURCEKAFKA): --set
    /// connect_address=HOST:PORT --set topic_ids=TOPIC[,TOPIC].
    Kafka,
    /// A RabbitMQ queue (RABBITMQ): --set url=amqp://... --set queue=Q (or
    /// --set exchange=E --set routing_key=K).
    Rabbitmq,
    /// A NATS JetStream stream, read by a durable consumer (NATS): --set
    /// url=nats://... --set stream=S.
    Nats,
    /// An MQTT subscription, QoS 1 in a persistent session (MQTT): --set
    /// url=mqtt://... --set topic=T.
    Mqtt,
}

impl TriggerKind {
    /// The API's type code of an event source's kind.
    fn source_code(self) -> Option<&'static str> {
        match self {
            TriggerKind::Redis => Some("REDIS"),
            TriggerKind::Kafka => Some("OPENSOURCEKAFKA"),
            TriggerKind::Rabbitmq => Some("RABBITMQ"),
            TriggerKind::Nats => Some("NATS"),
            TriggerKind::Mqtt => Some("MQTT"),
            TriggerKind::Apig | TriggerKind::Timer => None,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct TriggerAddArgs {
    /// The function.
    name: String,
    /// The trigger's type.
    #[arg(value_enum)]
    kind: TriggerKind,
    /// (apig) The route's path, e.g. /orders (it serves /orders/... too).
    #[arg(long, value_name = "PATH", required_if_eq("kind", "apig"))]
    path: Option<String>,
    /// (apig) The HTTP method it answers (default ANY).
    #[arg(long, value_name = "METHOD")]
    method: Option<String>,
    /// (timer) `Rate 5m` (units s, m, h, d) or `Cron 0 */5 * * * *` (seconds
    /// first, as FunctionGraph's timers).
    #[arg(long, value_name = "SCHEDULE", required_if_eq("kind", "timer"))]
    schedule: Option<String>,
    /// (timer) The text its events carry as user_event.
    #[arg(long, value_name = "TEXT")]
    user_event: Option<String>,
    /// (redis) The server: redis://[user:password@]host:port[/db].
    #[arg(
        long = "redis-url",
        value_name = "URL",
        required_if_eq("kind", "redis")
    )]
    redis_url: Option<String>,
    /// (redis) The stream's key.
    #[arg(long, value_name = "KEY", required_if_eq("kind", "redis"))]
    stream: Option<String>,
    /// (redis) The consumer group (default fnhost).
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// (redis) Entries per call, 1 to 1000 (default 10).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
    batch_size: Option<u64>,
    /// (redis) Where a group the trigger creates starts: latest (default) or earliest.
    #[arg(long, value_name = "WHERE", value_parser = ["latest", "earliest"])]
    start: Option<String>,
    /// (redis) The stream entries go to after the function's last failure.
    #[arg(long, value_name = "KEY")]
    dead_letter_stream: Option<String>,
    /// (event sources) A setting of the trigger's event_data, named as the
    /// API names it; VALUE is JSON when it parses as JSON (20, true,
    /// ["a","b"]), else text. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    settings: Vec<(String, Value)>,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TriggerIdArgs {
    /// The function.
    name: String,
    /// The trigger's id (see `fnhost trigger list`).
    trigger_id: String,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FunctionsCommand {
    /// List the project's functions.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// The function (NAME, or NAME:VERSION for a published version's).
    name: String,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// The request's method (GET, POST, PUT, DELETE...).
    method: String,
    /// The whole URL: http://HOST:PORT/PATH[?QUERY].
    url: String,
    /// The request's body (signed as sent; Content-Type defaults to
    /// application/json).
    #[arg(long, short = 'd', value_name = "BODY", conflicts_with = "data_file")]
    data: Option<String>,
    /// The request's body, from FILE.
    #[arg(long, value_name = "FILE")]
    data_file: Option<PathBuf>,
    /// A header to send and sign, `Name: value` (may repeat).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Print a ready curl command line instead of the headers.
    #[arg(long)]
    curl: bool,
    /// A JSON file with "access_key" and "secret_key" (default: the
    /// FNHOST_ACCESS_KEY and FNHOST_SECRET_KEY variables).
    #[arg(long, value_name = "FILE")]
    keys: Option<PathBuf>,
    /// What to print: text (header lines, or the curl line), or json
    /// ({"headers": {...}, "curl": "..."}).
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    output: Output,
}

/// The largest body `fnhost sign` reads (the server's largest request).
const MAX_SIGNED_BODY: u64 = 64 * 1024 * 1024;

fn parse_weight(s: &str) -> Result<(String, u32), String> {
    let (version, percent) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not VERSION=PERCENT"))?;
    let percent: u32 = percent
        .trim()
        .parse()
        .map_err(|_| format!("`{percent}` is not a whole percent"))?;
    if !(1..=100).contains(&percent) || version.trim().is_empty() {
        return Err(format!(
            "`{s}`: the version must be named and the percent be 1 to 100"
        ));
    }
    Ok((version.trim().to_owned(), percent))
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not `Name: value`"))?;
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        return Err(format!("`{name}` is not a header name"));
    }
    Ok((name, value.trim().to_owned()))
}

/// Prints `json` (pretty) on stdout.
fn print_json(json: &Value) {
    let text = serde_json::to_string_pretty(json).unwrap_or_default();
    println!("{}", json_for_stdout(&text));
}

/// Prints rows as aligned columns under `header`.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let n = cells.len();
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i + 1 < n {
                out.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        out
    };
    println!(
        "{}",
        for_stdout(&line(header.iter().map(|h| h.to_string()).collect()))
    );
    for row in rows {
        println!("{}", for_stdout(&line(row.clone())));
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A request that got no answer: the message on stderr, exit status 1.
pub(crate) fn no_answer(e: &fnhost_author::client::ClientError) -> i32 {
    eprintln!("error: {}", for_stderr(&e.to_string()));
    EXIT_REFUSED
}

/// What a command's request came to: the exit status, with the failure
/// on stderr.
fn finish(result: Result<(), Failure>) -> anyhow::Result<i32> {
    match result {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("error: {}", for_stderr(&e.to_string()));
            Ok(EXIT_REFUSED)
        }
    }
}

pub(crate) fn publish(a: PublishArgs) -> anyhow::Result<i32> {
    let remote = a.server.remote()?;
    let functions = Functions::new(&remote.client, &remote.project);
    finish(functions.publish(&a.name, a.description.as_deref()).map(
        |record| match a.output.output {
            Output::Json => print_json(&record),
            Output::Text => {
                let version = text(&record["version"]);
                eprintln!("published {}:{}", for_stderr(&a.name), for_stderr(&version));
                println!("{}", for_stdout(&version));
            }
        },
    ))
}

fn weights_text(alias: &Value) -> String {
    alias["additional_version_weights"]
        .as_object()
        .map(|w| {
            w.iter()
                .map(|(v, p)| format!("{v}={p}%"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

pub(crate) fn alias(c: AliasCommand) -> anyhow::Result<i32> {
    match c {
        AliasCommand::Set(a) => {
            let total: u32 = a.weights.iter().map(|(_, p)| p).sum();
            if total > 100 {
                bail!("the --weight percents add up to {total}, more than 100");
            }
            let remote = a.server.remote()?;
            let functions = Functions::new(&remote.client, &remote.project);
            finish(
                functions
                    .set_alias(
                        &a.name,
                        &a.alias,
                        &a.version,
                        &a.weights,
                        a.description.as_deref(),
                    )
                    .map(|record| match a.output.output {
                        Output::Json => print_json(&record),
                        Output::Text => {
                            let weights = weights_text(&record);
                            println!(
                                "{}",
                                for_stdout(&format!(
                                    "{}:{} -> {}{}",
                                    a.name,
                                    text(&record["name"]),
                                    text(&record["version"]),
                                    if weights.is_empty() {
                                        String::new()
                                    } else {
                                        format!(" (and {weights})")
                                    }
                                ))
                            );
                        }
                    }),
            )
        }
        AliasCommand::List(a) => {
            let remote = a.server.remote()?;
            let functions = Functions::new(&remote.client, &remote.project);
            finish(functions.aliases(&a.name).map(|list| {
                match a.output.output {
                    Output::Json => print_json(&Value::Array(list)),
                    Output::Text => print_table(
                        &["ALIAS", "VERSION", "WEIGHTS", "DESCRIPTION"],
                        &list
                            .iter()
                            .map(|x| {
                                vec![
                                    text(&x["name"]),
                                    text(&x["version"]),
                                    weights_text(x),
                                    text(&x["description"]),
                                ]
                            })
                            .collect::<Vec<_>>(),
                    ),
                }
            }))
        }
        AliasCommand::Delete(a) => {
            let remote = a.server.remote()?;
            let functions = Functions::new(&remote.client, &remote.project);
            finish(
                functions
                    .delete_alias(&a.name, &a.alias)
                    .map(|()| deleted(a.output.output, "alias", &a.alias)),
            )
        }
    }
}

fn deleted(output: Output, what: &str, id: &str) {
    match output {
        Output::Json => print_json(&serde_json::json!({ "deleted": what, "id": id })),
        Output::Text => eprintln!("deleted {what} {}", for_stderr(id)),
    }
}

/// A trigger's details on one line: its route or its schedule.
fn trigger_detail(t: &Value) -> String {
    let d = &t["event_data"];
    match t["trigger_type_code"].as_str() {
        Some("APIG") => format!("{} {}", text(&d["req_method"]), text(&d["path"])),
        Some("REDIS") => format!(
            "{} stream {} group {}",
            text(&d["url"]),
            text(&d["stream"]),
            d["group"].as_str().unwrap_or("fnhost")
        ),
        Some("OPENSOURCEKAFKA" | "KAFKA") => {
            let topics = d
                .get("topic_ids")
                .or_else(|| d.get("topics"))
                .or_else(|| d.get("topic_id"))
                .map_or_else(String::new, |t| match t {
                    Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
                    other => text(other),
                });
            format!("{} topics {topics}", text(&d["connect_address"]))
        }
        Some("RABBITMQ") => match d.get("queue").and_then(Value::as_str) {
            Some(queue) => format!("{} queue {queue}", text(&d["url"])),
            None => format!(
                "{} exchange {} key {}",
                text(&d["url"]),
                text(d.get("exchange").unwrap_or(&d["exchange_name"])),
                d["routing_key"].as_str().unwrap_or("#")
            ),
        },
        Some("NATS") => format!("{} stream {}", text(&d["url"]), text(&d["stream"])),
        Some("MQTT") => format!("{} topic {}", text(&d["url"]), text(&d["topic"])),
        Some("TIMER") => {
            let mut s = format!("{} {}", text(&d["schedule_type"]), text(&d["schedule"]));
            if let Some(e) = d["user_event"].as_str().filter(|e| !e.is_empty()) {
                s.push_str(&format!(" user_event={e}"));
            }
            s
        }
        _ => d.to_string(),
    }
}

/// `KEY=VALUE`: VALUE as JSON when it parses (a number, a boolean, a list,
/// an object, a quoted string), else as text.
fn parse_setting(s: &str) -> Result<(String, Value), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    if key.is_empty() {
        return Err(format!("`{s}` has no key"));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::from(value));
    Ok((key.to_owned(), value))
}

pub(crate) fn trigger(c: TriggerCommand) -> anyhow::Result<i32> {
    match c {
        TriggerCommand::Add(a) => {
            let redis_flags = a.redis_url.is_some()
                || a.stream.is_some()
                || a.group.is_some()
                || a.batch_size.is_some()
                || a.start.is_some()
                || a.dead_letter_stream.is_some();
            if redis_flags && a.kind != TriggerKind::Redis {
                bail!("--redis-url, --stream, --group, --batch-size, --start and --dead-letter-stream are for redis triggers");
            }
            if !a.settings.is_empty() && a.kind.source_code().is_none() {
                bail!("--set is for event-source triggers (redis, kafka, rabbitmq, nats, mqtt)");
            }
            let new = match a.kind {
                TriggerKind::Apig => {
                    if a.schedule.is_some() || a.user_event.is_some() {
                        bail!("--schedule and --user-event are for timer triggers");
                    }
                    let path = a.path.as_deref().unwrap_or("/");
                    if !path.starts_with('/') {
                        bail!("--path must start with `/`, got `{path}`");
                    }
                    NewTrigger::apig(path, a.method.as_deref())
                }
                TriggerKind::Redis => {
                    if a.path.is_some()
                        || a.method.is_some()
                        || a.schedule.is_some()
                        || a.user_event.is_some()
                    {
                        bail!("--path, --method, --schedule and --user-event are for apig and timer triggers");
                    }
                    let mut data = serde_json::json!({
                        "url": a.redis_url.clone().unwrap_or_default(),
                        "stream": a.stream.clone().unwrap_or_default(),
                    });
                    for (key, value) in [
                        ("group", a.group.clone().map(Value::from)),
                        ("batch_size", a.batch_size.map(Value::from)),
                        ("start", a.start.clone().map(Value::from)),
                        (
                            "dead_letter_stream",
                            a.dead_letter_stream.clone().map(Value::from),
                        ),
                    ] {
                        if let Some(value) = value {
                            data[key] = value;
                        }
                    }
                    for (key, value) in &a.settings {
                        data[key.as_str()] = value.clone();
                    }
                    NewTrigger {
                        kind: "REDIS",
                        event_data: data,
                    }
                }
                TriggerKind::Kafka
                | TriggerKind::Rabbitmq
                | TriggerKind::Nats
                | TriggerKind::Mqtt => {
                    if a.path.is_some()
                        || a.method.is_some()
                        || a.schedule.is_some()
                        || a.user_event.is_some()
                    {
                        bail!("--path, --method, --schedule and --user-event are for apig and timer triggers");
                    }
                    if a.settings.is_empty() {
                        bail!("give the trigger's settings with --set KEY=VALUE (see `fnhost trigger add --help`)");
                    }
                    let data: serde_json::Map<String, Value> = a.settings.iter().cloned().collect();
                    NewTrigger {
                        kind: a.kind.source_code().unwrap_or_default(),
                        event_data: Value::Object(data),
                    }
                }
                TriggerKind::Timer => {
                    if a.path.is_some() || a.method.is_some() {
                        bail!("--path and --method are for apig triggers");
                    }
                    NewTrigger::timer(a.schedule.as_deref().unwrap_or(""), a.user_event.as_deref())
                        .map_err(anyhow::Error::msg)?
                }
            };
            let remote = a.server.remote()?;
            let functions = Functions::new(&remote.client, &remote.project);
            finish(
                functions
                    .add_trigger(&a.name, &new)
                    .map(|record| match a.output.output {
                        Output::Json => print_json(&record),
                        Output::Text => {
                            eprintln!(
                                "added {} trigger to {}: {}",
                                text(&record["trigger_type_code"]),
                                for_stderr(&a.name),
                                for_stderr(&trigger_detail(&record))
                            );
                            println!("{}", for_stdout(&text(&record["trigger_id"])));
                        }
                    }),
            )
        }
        TriggerCommand::List(a) => {
            let remote = a.server.remote()?;
            let functions = Functions::new(&remote.client, &remote.project);
            finish(functions.triggers_of(&a.name).map(|list| {
                match a.output.output {
                    Output::Json => print_json(&Value::Array(list)),
                    Output::Text => print_table(
                        &["ID", "TYPE", "STATUS", "DETAIL"],
                        &list
                            .iter()
                            .map(|t| {
                                vec![
                                    text(&t["trigger_id"]),
                                    text(&t["trigger_type_code"]),
                                    text(&t["trigger_status"]),
                                    trigger_detail(t),
                                ]
                            })
                            .collect::<Vec<_>>(),
                    ),
                }
            }))
        }
        TriggerCommand::Enable(a) => set_status(a, true),
        TriggerCommand::Disable(a) => set_status(a, false),
        TriggerCommand::Delete(a) => {
            let remote = a.server.remote()?;
            let functions = Functions::new(&remote.client, &remote.project);
            finish(
                functions
                    .delete_trigger(&a.name, &a.trigger_id)
                    .map(|()| deleted(a.output.output, "trigger", &a.trigger_id)),
            )
        }
    }
}

fn set_status(a: TriggerIdArgs, active: bool) -> anyhow::Result<i32> {
    let remote = a.server.remote()?;
    let functions = Functions::new(&remote.client, &remote.project);
    finish(
        functions
            .set_trigger_status(&a.name, &a.trigger_id, active)
            .map(|record| match a.output.output {
                Output::Json => print_json(&record),
                Output::Text => println!(
                    "{}",
                    for_stdout(&format!(
                        "{} {}",
                        text(&record["trigger_id"]),
                        text(&record["trigger_status"])
                    ))
                ),
            }),
    )
}

pub(crate) fn functions(c: FunctionsCommand) -> anyhow::Result<i32> {
    let FunctionsCommand::List(a) = c;
    let remote = a.server.remote()?;
    let functions = Functions::new(&remote.client, &remote.project);
    finish(functions.list().map(|list| {
        match a.output.output {
            Output::Json => print_json(&Value::Array(list)),
            Output::Text => print_table(
                &["NAME", "HANDLER", "RUNTIME", "MEMORY", "TIMEOUT", "STATE"],
                &list
                    .iter()
                    .map(|f| {
                        let state = match f["last_update_status"].as_str() {
                            Some("Failed") => {
                                format!("Failed: {}", text(&f["last_update_status_reason"]))
                            }
                            Some(s) => s.to_owned(),
                            None => "Active".to_owned(),
                        };
                        vec![
                            text(&f["func_name"]),
                            text(&f["handler"]),
                            text(&f["runtime"]),
                            format!("{} MB", text(&f["memory_size"])),
                            format!("{} s", text(&f["timeout"])),
                            state,
                        ]
                    })
                    .collect::<Vec<_>>(),
            ),
        }
    }))
}

pub(crate) fn config(a: ConfigArgs) -> anyhow::Result<i32> {
    let remote = a.server.remote()?;
    let functions = Functions::new(&remote.client, &remote.project);
    finish(
        functions
            .config(&a.name)
            .map(|record| match a.output.output {
                Output::Json => print_json(&record),
                Output::Text => {
                    const FIELDS: [&str; 15] = [
                        "func_urn",
                        "version",
                        "handler",
                        "runtime",
                        "memory_size",
                        "timeout",
                        "initializer_handler",
                        "initializer_timeout",
                        "isolation",
                        "host_functions",
                        "concurrent_num",
                        "digest",
                        "code_size",
                        "last_modified",
                        "last_update_status",
                    ];
                    for field in FIELDS {
                        let value = &record[field];
                        if !value.is_null() {
                            println!("{}", for_stdout(&format!("{field}: {}", text(value))));
                        }
                    }
                    if let Some(reason) = record["last_update_status_reason"].as_str() {
                        println!(
                            "{}",
                            for_stdout(&format!("last_update_status_reason: {reason}"))
                        );
                    }
                    if let Some(data) = record["user_data"].as_str().filter(|d| !d.is_empty()) {
                        println!("{}", for_stdout(&format!("user_data: {data}")));
                    }
                }
            }),
    )
}

/// Quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub(crate) fn sign(a: SignArgs) -> anyhow::Result<i32> {
    let method = a.method.to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        bail!("`{}` is not an HTTP method", a.method);
    }
    let rest = a
        .url
        .strip_prefix("http://")
        .with_context(|| format!("`{}` is not an http:// URL", a.url))?;
    let (authority, path_query) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
    let remote =
        crate::remote::remote(Some(format!("http://{authority}")), None, a.keys.as_deref())?;
    if !remote.client.signs() {
        bail!("nothing to sign with: give --keys FILE, or set FNHOST_ACCESS_KEY and FNHOST_SECRET_KEY");
    }
    let body = match (&a.data, &a.data_file) {
        (Some(d), _) => d.clone().into_bytes(),
        (None, Some(file)) => {
            let f = std::fs::File::open(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_SIGNED_BODY + 1), &mut body)
                .with_context(|| format!("cannot read {}", file.display()))?;
            if body.len() as u64 > MAX_SIGNED_BODY {
                bail!("{} is over {MAX_SIGNED_BODY} bytes", file.display());
            }
            body
        }
        (None, None) => Vec::new(),
    };
    let mut headers = fnhost_author::client::HeaderMap::new();
    for (name, value) in &a.headers {
        let name: fnhost_author::client::HeaderName = name
            .parse()
            .with_context(|| format!("`{name}` is not a header name"))?;
        let value = fnhost_author::client::HeaderValue::from_str(value)
            .with_context(|| format!("the value of {name} is not a header value"))?;
        headers.insert(name, value);
    }
    if !body.is_empty() && !headers.contains_key("content-type") {
        headers.insert(
            "content-type",
            fnhost_author::client::HeaderValue::from_static("application/json"),
        );
    }
    remote
        .client
        .sign_into(&method, path, query, &mut headers, &body, SystemTime::now())?;
    let lines: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let mut curl = format!("curl -sS -X {method}");
    for (k, v) in &lines {
        curl.push_str(&format!(" -H {}", shell_quote(&format!("{k}: {v}"))));
    }
    match (&a.data, &a.data_file) {
        (Some(d), _) => curl.push_str(&format!(" --data-binary {}", shell_quote(d))),
        (None, Some(file)) => curl.push_str(&format!(
            " --data-binary {}",
            shell_quote(&format!("@{}", file.display()))
        )),
        (None, None) => {}
    }
    curl.push(' ');
    curl.push_str(&shell_quote(&a.url));
    match a.output {
        Output::Json => print_json(&serde_json::json!({
            "headers": lines.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect::<serde_json::Map<String, Value>>(),
            "curl": curl,
        })),
        Output::Text if a.curl => println!("{curl}"),
        Output::Text => {
            for (k, v) in &lines {
                println!("{k}: {v}");
            }
        }
    }
    let _ = std::io::stdout().flush();
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_version_equals_percent() {
        assert_eq!(parse_weight("2=10"), Ok(("2".to_owned(), 10)));
        for bad in ["2", "=10", "2=0", "2=101", "2=x", "2=-1"] {
            assert!(parse_weight(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_are_name_colon_value() {
        assert_eq!(
            parse_header("X-Cff-Log-Type: tail"),
            Ok(("x-cff-log-type".to_owned(), "tail".to_owned()))
        );
        for bad in ["nocolon", ": v", "a b: v", "a/b: v"] {
            assert!(parse_header(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("abc"), "abc");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
