//! Triggers: the API (`/v2/{project_id}/fgs/triggers/{urn}[/{type}/{id}]`)
//! and the timer scheduler. A TIMER trigger with a `Rate` (`30s`, `3m`, `1h`,
//! `1d`) or `Cron` schedule fires asynchronous invocations carrying the Timer
//! event; enabling or disabling it takes effect at once. Active APIG
//! triggers route their `path` to their function through the gateway
//! (which, without access keys or with `apig_any_function`, also serves
//! every function under `/apig/{function}/...`).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::active_triggers::{ApigRoute, ApigRoutes, Timers};
use super::error::ApiError;
use super::functions::parse_body;
use super::model::now_rfc3339;
use super::state::{AppState, Shared};

/// A trigger as stored and served.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TriggerRecord {
    /// Id.
    pub trigger_id: String,
    /// The function's name.
    pub function: String,
    /// `TIMER` or `APIG`.
    pub trigger_type_code: String,
    /// `ACTIVE` or `DISABLED`.
    pub trigger_status: String,
    /// Type-specific settings (TIMER: name, schedule_type, schedule, user_event).
    pub event_data: Value,
    /// RFC 3339.
    pub created_time: String,
    /// RFC 3339.
    pub last_updated_time: String,
}

impl TriggerRecord {
    /// The trigger as the API answers it: passwords (in URLs, and fields
    /// named `...password`) masked, and an
    /// active event source that cannot consume shown as `ERROR` with the
    /// reason (`status_reason`), and a running event source's `lag`.
    fn view(&self, state: &AppState) -> Value {
        let mut event_data = self.event_data.clone();
        if let Some(data) = event_data.as_object_mut() {
            for (key, value) in data.iter_mut() {
                if key.ends_with("password") && value.is_string() {
                    *value = Value::from("***");
                } else if let Some(masked) = value.as_str().and_then(mask_password) {
                    *value = Value::from(masked);
                }
            }
        }
        let mut status = Value::from(self.trigger_status.as_str());
        let mut reason = Value::Null;
        let mut lag = Value::Null;
        if let Some(source) = state.timers.consumer_status(&self.trigger_id) {
            if let Some(error) = source.error() {
                status = Value::from("ERROR");
                reason = Value::from(error);
            }
            lag = Value::from(source.lag.load(std::sync::atomic::Ordering::Relaxed));
        }
        let mut view = json!({
            "trigger_id": self.trigger_id,
            "trigger_type_code": self.trigger_type_code,
            "trigger_status": status,
            "event_data": event_data,
            "created_time": self.created_time,
            "last_updated_time": self.last_updated_time,
        });
        if !reason.is_null() {
            view["status_reason"] = reason;
        }
        // fnhost's: an event source's messages not yet handled, as
        // `fnhost_trigger_lag` has it.
        if !lag.is_null() {
            view["lag"] = lag;
        }
        view
    }
}

/// A URL with its secrets masked (`***`): the password of
/// `user:password@`, a userinfo without a colon whole (NATS and Redis take
/// a lone userinfo as a token or password), and query parameters whose
/// names hold `pass`, `token` or `secret`. `None` when it carries none.
fn mask_password(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let mut changed = false;
    let mut out = format!("{scheme}://");
    // The last `@` ends the userinfo: a password may hold an `@` of its
    // own (an unencoded one must not leave the rest of it visible).
    match before_query.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***@");
                }
                None => out.push_str("***@"),
            }
            out.push_str(host);
            changed = true;
        }
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                let lower = name.to_ascii_lowercase();
                if !value.is_empty()
                    && ["pass", "token", "secret"]
                        .iter()
                        .any(|s| lower.contains(s))
                {
                    changed = true;
                    format!("{name}=***")
                } else {
                    pair.to_owned()
                }
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    changed.then_some(out)
}

/// When a timer fires.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every interval.
    Rate(Duration),
    /// On a cron pattern (seconds optional; `?` allowed), in UTC.
    Cron(Box<croner::Cron>),
}

/// The longest `Rate` a timer may have.
pub const MAX_TIMER_RATE: Duration = Duration::from_secs(366 * 86_400);

/// Parses a TIMER schedule; a `Rate` must be from `min_rate` to
/// [`MAX_TIMER_RATE`].
pub fn parse_schedule(
    schedule_type: &str,
    schedule: &str,
    min_rate: Duration,
) -> Result<Schedule, String> {
    match schedule_type {
        "Rate" => {
            let s = schedule.trim();
            let (number, unit) =
                s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
            let n: u64 = number
                .parse()
                .map_err(|_| format!("rate `{schedule}` does not start with a number"))?;
            let unit_secs: u64 = match unit.trim() {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                other => return Err(format!("rate unit `{other}` is not one of s, m, h, d")),
            };
            let rate = n
                .checked_mul(unit_secs)
                .map(Duration::from_secs)
                .filter(|d| *d <= MAX_TIMER_RATE)
                .ok_or_else(|| format!("rate `{schedule}` is longer than a year"))?;
            if rate < min_rate.max(Duration::from_secs(1)) {
                return Err(format!(
                    "rate `{schedule}` is shorter than this server's minimum of {} s",
                    min_rate.as_secs().max(1)
                ));
            }
            Ok(Schedule::Rate(rate))
        }
        "Cron" => {
            let cron = CronParser::builder()
                .seconds(Seconds::Optional)
                .build()
                .parse(schedule.trim_start_matches("@cron").trim())
                .map_err(|e| format!("cron `{schedule}`: {e}"))?;
            let floor = min_rate.max(Duration::from_secs(1));
            if let Some(gap) = cron_gap_below(&cron, floor) {
                return Err(format!(
                    "cron `{schedule}` fires {} s apart, more often than this server's minimum of {} s",
                    gap.as_secs(),
                    floor.as_secs()
                ));
            }
            Ok(Schedule::Cron(Box::new(cron)))
        }
        other => Err(format!("schedule_type `{other}` is not Rate or Cron")),
    }
}

/// Two firings of `cron` closer than `floor`, if the search finds any: the
/// shortest gap it saw. The search walks the firings of the first two days
/// on which the expression fires (every gap inside a day, and the day
/// boundary), then the hours around midnight of eight consecutive days
/// (boundaries between the days of a week) and of every month's end in a
/// leap year and the year after (short months, leap days, the year's end).
/// Each walk stops at its window or at a gap under the floor, so an
/// expression costs at most a few thousand steps whatever it says.
fn cron_gap_below(cron: &croner::Cron, floor: Duration) -> Option<Duration> {
    use chrono::TimeZone as _;
    let floor = chrono::Duration::from_std(floor).ok()?;
    let walk = |start: chrono::DateTime<chrono::Utc>, span: chrono::Duration| {
        let mut previous: Option<chrono::DateTime<chrono::Utc>> = None;
        let mut end = None;
        for at in cron.iter_after(start).take(4000) {
            let end = *end.get_or_insert(at + span);
            if at > end {
                break;
            }
            if let Some(p) = previous {
                let gap = at - p;
                if gap < floor {
                    return gap.to_std().ok();
                }
            }
            previous = Some(at);
        }
        None
    };
    let origin = chrono::Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single()?;
    if let Some(gap) = walk(origin, chrono::Duration::hours(49)) {
        return Some(gap);
    }
    let mut midnights: Vec<chrono::DateTime<chrono::Utc>> = (1..=8)
        .map(|day| origin + chrono::Duration::days(day))
        .collect();
    for year in [2024, 2025] {
        for month in 1..=12u32 {
            let (y, m) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            midnights.extend(chrono::Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single());
        }
    }
    midnights.into_iter().find_map(|midnight| {
        // From the hour before midnight, whatever the first firing's day.
        let start = midnight - chrono::Duration::hours(1);
        let mut previous = None;
        for at in cron.iter_after(start).take(4000) {
            if at > midnight + chrono::Duration::hours(1) {
                break;
            }
            if let Some(p) = previous {
                let gap: chrono::Duration = at - p;
                if gap < floor {
                    return gap.to_std().ok();
                }
            }
            previous = Some(at);
        }
        None
    })
}

impl Schedule {
    /// The next firing on a clock every node shares: its time (ms since
    /// the Unix epoch), which names the tick, and how long until then. A
    /// rate fires at the multiples of its period since the epoch, so that
    /// nodes agree on which tick is due.
    pub(crate) fn next_tick(&self) -> Option<(i64, Duration)> {
        let now = chrono::Utc::now();
        let now_ms = now.timestamp_millis();
        let at = match self {
            Schedule::Rate(d) => {
                let period = i64::try_from(d.as_millis()).ok()?.max(1);
                now_ms
                    .checked_div(period)?
                    .checked_add(1)?
                    .checked_mul(period)?
            }
            Schedule::Cron(c) => c.find_next_occurrence(&now, false).ok()?.timestamp_millis(),
        };
        let wait = Duration::from_millis(u64::try_from(at - now_ms).unwrap_or(0));
        Some((at, wait))
    }

    /// How long until the next firing.
    pub(crate) fn next_delay(&self) -> Option<Duration> {
        match self {
            Schedule::Rate(d) => Some(*d),
            Schedule::Cron(c) => {
                let now = chrono::Utc::now();
                let next = c.find_next_occurrence(&now, false).ok()?;
                (next - now).to_std().ok()
            }
        }
    }
}

// The parts of the in-memory trigger tables that read the store or start
// timers through the server's state.
impl Timers {
    /// This node became (or stopped being) the one that fires timers:
    /// starts every stored timer, or stops them all.
    pub(crate) fn lead(&self, state: &Shared, leading: bool) {
        self.leading
            .store(leading, std::sync::atomic::Ordering::Release);
        if leading {
            restart_timers(state, None);
        } else {
            for (_, (_, task)) in self.tasks.lock().drain() {
                task.abort();
            }
        }
    }

    /// Stops every timer of `function`.
    pub(crate) fn stop_function(&self, state: &AppState, function: &str) {
        if let Ok(triggers) = state
            .management
            .store()
            .triggers::<TriggerRecord>(Some(function))
        {
            for t in triggers {
                self.stop(&t.trigger_id);
            }
        }
    }
}

impl ApigRoutes {
    /// Rebuilds the table from the store.
    pub(crate) fn reload(&self, state: &AppState) {
        match state.management.store().triggers::<TriggerRecord>(None) {
            Ok(triggers) => *self.0.write() = Arc::new(apig_routes(&triggers)),
            Err(e) => log::error!(target: "fnhost::server", "cannot reload APIG routes: {e}"),
        }
    }
}

fn apig_routes(triggers: &[TriggerRecord]) -> Vec<ApigRoute> {
    triggers
        .iter()
        .filter(|t| t.trigger_type_code == "APIG" && t.trigger_status == "ACTIVE")
        .filter_map(|t| {
            let base = t.event_data.get("path")?.as_str()?.trim_end_matches('/');
            let method = t
                .event_data
                .get("req_method")
                .and_then(Value::as_str)
                .unwrap_or("ANY")
                .to_ascii_uppercase();
            (!base.is_empty()).then(|| ApigRoute {
                base: base.to_owned(),
                method,
                function: t.function.clone(),
            })
        })
        .collect()
}

/// Starts the timer of an active TIMER trigger (replacing a running one).
pub(crate) fn start_timer(state: &Shared, record: &TriggerRecord) -> Result<(), String> {
    if crate::event_sources::is_source(&record.trigger_type_code) {
        let trigger = crate::event_sources::Trigger {
            id: &record.trigger_id,
            function: &record.function,
            trigger_type: &record.trigger_type_code,
            active: record.trigger_status == "ACTIVE",
            event_data: &record.event_data,
        };
        // Unchanged (a cluster's resync, a new timer leader): the running
        // consumer goes on; restarting it would redo its batch in flight.
        if trigger.active
            && state
                .timers
                .runs_consumer(&record.trigger_id, &trigger.started_with())
        {
            return Ok(());
        }
        state.timers.stop(&record.trigger_id);
        return crate::event_sources::start(state, trigger);
    }
    state.timers.stop(&record.trigger_id);
    if record.trigger_type_code != "TIMER" || record.trigger_status != "ACTIVE" {
        return Ok(());
    }
    let data = &record.event_data;
    let text = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let schedule = parse_schedule(
        &text("schedule_type"),
        &text("schedule"),
        state.min_timer_rate,
    )?;
    if !state.timers.fires() {
        return Ok(());
    }
    let (name, user_event) = (text("name"), text("user_event"));
    let function = record.function.clone();
    let trigger_id = record.trigger_id.clone();
    let s = Arc::clone(state);
    // In a cluster each tick is named by its trigger and its time: a tick
    // that two nodes fire (one losing the timer lock, one taking it) is one
    // invocation, the second insert a conflict.
    let shared_ticks = state.management.store().is_shared();
    let task = tokio::spawn(async move {
        loop {
            let (delay, tick) = if shared_ticks {
                match schedule.next_tick() {
                    Some((at, wait)) => (Some(wait), Some(tick_request_id(&trigger_id, at))),
                    None => (None, None),
                }
            } else {
                (schedule.next_delay(), None)
            };
            let Some(delay) = delay else {
                log::warn!(target: "fnhost::timer", "timer {name}: no next firing time; stopping");
                return;
            };
            tokio::time::sleep(delay).await;
            let event = fnhost_api::events::TimerEvent::new(
                name.clone(),
                now_rfc3339(),
                user_event.clone(),
            );
            let payload = Bytes::from(event.to_string());
            let trace = crate::trace::TraceContext::start();
            let accepted = crate::asynchronous::Accepted {
                function: function.clone(),
                target: function.clone(),
                payload,
                traceparent: trace.incoming(),
                tracestate: String::new(),
                source: "timer",
                depth: 0,
                request_id: tick,
            };
            match crate::asynchronous::enqueue(&s, accepted).await {
                Ok(_) => {}
                Err(e) if e.status == StatusCode::CONFLICT => {
                    log::debug!(target: "fnhost::timer", "timer {name} of {function}: this tick was fired already");
                }
                Err(e) => {
                    log::warn!(target: "fnhost::timer", "timer {name} of {function}: {}", e.message)
                }
            }
        }
    });
    state
        .timers
        .tasks
        .lock()
        .insert(record.trigger_id.clone(), (record.function.clone(), task));
    Ok(())
}

/// The request id of a timer's tick at `at_ms`: a UUID from the trigger's
/// id and the tick's time, the same on every node.
fn tick_request_id(trigger_id: &str, at_ms: i64) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(format!("fnhost-timer-tick\0{trigger_id}\0{at_ms}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Methods an APIG trigger may name.
const APIG_METHODS: [&str; 8] = [
    "ANY", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS",
];
/// The longest APIG trigger path.
const MAX_APIG_PATH: usize = 256;

/// An APIG trigger's `path` and `req_method`: a path of its own, which no
/// path of the server's (`/v2/...`, `/healthz`, ...) may be shadowed by.
fn check_apig(event_data: &Value) -> Result<(), ApiError> {
    let path = event_data
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("an APIG trigger needs event_data.path"))?;
    let base = path.trim_end_matches('/');
    if !path.starts_with('/') || base.is_empty() || path.len() > MAX_APIG_PATH {
        return Err(ApiError::bad_request(format!(
            "APIG path `{path}` must start with / and have 1 to {MAX_APIG_PATH} characters after it"
        )));
    }
    let valid_segment = |segment: &str| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    if !base[1..].split('/').all(valid_segment) {
        return Err(ApiError::bad_request(format!(
            "APIG path `{path}` may only have segments of letters, digits, -, ., _ and ~"
        )));
    }
    if super::apig::is_reserved_path(base) {
        return Err(ApiError::bad_request(format!(
            "APIG path `{path}` is a path of the server itself (/v2, /healthz, /readyz, /metrics, /apig, /console)"
        )));
    }
    if let Some(method) = event_data.get("req_method") {
        let method = method.as_str().map(str::to_ascii_uppercase);
        if !method.as_deref().is_some_and(|m| APIG_METHODS.contains(&m)) {
            return Err(ApiError::bad_request(format!(
                "APIG req_method must be one of {}",
                APIG_METHODS.join(", ")
            )));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct CreateBody {
    trigger_type_code: String,
    #[serde(default)]
    trigger_status: Option<String>,
    #[serde(default)]
    event_data: Option<Value>,
}

fn check_status(status: &str) -> Result<(), ApiError> {
    match status {
        "ACTIVE" | "DISABLED" => Ok(()),
        other => Err(ApiError::bad_request(format!(
            "trigger_status `{other}` is not ACTIVE or DISABLED"
        ))),
    }
}

/// `POST /v2/{project_id}/fgs/triggers/{urn}`
pub(crate) async fn create(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: CreateBody = parse_body(&body)?;
    // Under the management lock: a trigger is never created for a function
    // being deleted.
    let _changing = state.management.begin_triggers(&urn).await?;
    let (function, _) = state.management.lookup(&urn)?;
    let status = body.trigger_status.unwrap_or_else(|| "ACTIVE".into());
    check_status(&status)?;
    let event_data = body.event_data.unwrap_or_else(|| json!({}));
    match body.trigger_type_code.as_str() {
        "TIMER" => {
            let text = |k: &str| {
                event_data
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            parse_schedule(
                &text("schedule_type"),
                &text("schedule"),
                state.min_timer_rate,
            )
            .map_err(ApiError::bad_request)?;
        }
        "APIG" => check_apig(&event_data)?,
        source if crate::event_sources::is_source(source) => {
            crate::event_sources::check(source, &event_data).map_err(ApiError::bad_request)?;
            crate::event_sources::check_host(state.event_source_hosts, &event_data)
                .map_err(ApiError::bad_request)?
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "trigger type `{other}` is not supported; use TIMER, APIG or {}",
                crate::event_sources::TYPES.join(", ")
            )))
        }
    }
    let now = now_rfc3339();
    let record = TriggerRecord {
        trigger_id: uuid::Uuid::new_v4().to_string(),
        function: function.func_name,
        trigger_type_code: body.trigger_type_code,
        trigger_status: status,
        event_data,
        created_time: now.clone(),
        last_updated_time: now,
    };
    state
        .management
        .store()
        .put_trigger(&record.trigger_id, &record.function, &record)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    state.apig_routes.reload(&state);
    start_timer(&state, &record).map_err(ApiError::bad_request)?;
    Ok((StatusCode::CREATED, Json(record.view(&state))))
}

/// `GET /v2/{project_id}/fgs/triggers/{urn}`
pub(crate) async fn list(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (function, _) = state.management.lookup(&urn)?;
    let triggers: Vec<TriggerRecord> = state
        .management
        .store()
        .triggers(Some(&function.func_name))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(Value::Array(
        triggers.iter().map(|t| t.view(&state)).collect(),
    )))
}

fn find(state: &AppState, urn: &str, id: &str) -> Result<TriggerRecord, ApiError> {
    let (function, _) = state.management.lookup(urn)?;
    state
        .management
        .store()
        .trigger::<TriggerRecord>(id)
        .map_err(|e| ApiError::internal(e.to_string()))?
        .filter(|t| t.function == function.func_name)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "FSS.1054",
                format!("trigger `{id}` not found"),
            )
        })
}

/// `GET .../triggers/{urn}/{type}/{id}`
pub(crate) async fn show(
    State(state): State<Shared>,
    Path((_, urn, _, id)): Path<(String, String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(find(&state, &urn, &id)?.view(&state)))
}

#[derive(Deserialize)]
struct UpdateBody {
    trigger_status: String,
}

/// `PUT .../triggers/{urn}/{type}/{id}`: enable or disable, at once.
pub(crate) async fn update(
    State(state): State<Shared>,
    Path((_, urn, _, id)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: UpdateBody = parse_body(&body)?;
    check_status(&body.trigger_status)?;
    let _changing = state.management.begin_triggers(&urn).await?;
    let mut record = find(&state, &urn, &id)?;
    record.trigger_status = body.trigger_status;
    record.last_updated_time = now_rfc3339();
    state
        .management
        .store()
        .put_trigger(&record.trigger_id, &record.function, &record)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    state.apig_routes.reload(&state);
    start_timer(&state, &record).map_err(ApiError::bad_request)?;
    Ok(Json(record.view(&state)))
}

/// `DELETE .../triggers/{urn}/{type}/{id}`
pub(crate) async fn delete(
    State(state): State<Shared>,
    Path((_, urn, _, id)): Path<(String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let _changing = state.management.begin_triggers(&urn).await?;
    let record = find(&state, &urn, &id)?;
    state.timers.stop(&record.trigger_id);
    state
        .management
        .store()
        .delete_trigger(&record.trigger_id)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    state.apig_routes.reload(&state);
    Ok(StatusCode::NO_CONTENT)
}

/// Restarts the timers of every stored active TIMER trigger and loads the
/// APIG routes.
pub(crate) fn restore(state: &Shared) {
    state.apig_routes.reload(state);
    restart_timers(state, None);
}

/// Starts the stored timers (of `function`, when given) afresh; stops the
/// running ones of `function` first, whether or not the store still has
/// them. Event-source consumers are compared instead: one whose trigger is
/// stored unchanged goes on, one changed is restarted, one gone is stopped.
pub(crate) fn restart_timers(state: &Shared, function: Option<&str>) {
    if let Some(f) = function {
        state.timers.stop_timers_of(f);
    }
    let Ok(triggers) = state.management.store().triggers::<TriggerRecord>(function) else {
        return;
    };
    let stored: Vec<&str> = triggers.iter().map(|t| t.trigger_id.as_str()).collect();
    state.timers.stop_consumers_not_in(function, &stored);
    for t in triggers {
        if let Err(e) = start_timer(state, &t) {
            log::error!(target: "fnhost::timer", "trigger {}: {e}", t.trigger_id);
        }
    }
}

impl FromStr for Schedule {
    type Err = String;
    /// `Rate:30s` or `Cron:0 * * * * ?`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (t, v) = s.split_once(':').ok_or("expected TYPE:SCHEDULE")?;
        parse_schedule(t, v, Duration::from_secs(1))
    }
}

/// The id prefix of triggers a functions-directory sidecar declares.
const DIRECTORY: &str = "dir-";

/// Makes directory function `function`'s sidecar triggers (`wanted`, from
/// its `NAME.toml`) the ones it has: creates, replaces and deletes its
/// `dir-` triggers in the store, restarts their timers and reloads the APIG
/// routes. Triggers created through the API are left alone. Must run inside
/// the server's executor (timers are its tasks), under the management lock.
pub(crate) fn sync_directory(
    state: &Shared,
    function: &str,
    wanted: &[fnhost_manifest::Trigger],
) -> Result<(), String> {
    let store = state.management.store();
    let now = now_rfc3339();
    let mut records = Vec::new();
    for (i, trigger) in wanted.iter().enumerate() {
        let trigger_id = format!("{DIRECTORY}{function}-{i}");
        let (kind, event_data) = match trigger {
            fnhost_manifest::Trigger::Apig { path, method } => {
                let data = json!({"path": path, "req_method": method});
                check_apig(&data).map_err(|e| format!("trigger {i}: {}", e.message))?;
                ("APIG", data)
            }
            fnhost_manifest::Trigger::Timer {
                schedule,
                user_event,
            } => {
                let (kind, rest) = fnhost_manifest::split_schedule(schedule)
                    .ok_or_else(|| format!("trigger {i}: `{schedule}` is not a schedule"))?;
                parse_schedule(kind, rest, state.min_timer_rate)
                    .map_err(|e| format!("trigger {i}: {e}"))?;
                let data = json!({
                    "name": trigger_id,
                    "schedule_type": kind,
                    "schedule": rest,
                    "user_event": user_event.clone().unwrap_or_default(),
                });
                ("TIMER", data)
            }
            source => {
                let Some((kind, settings)) = source.event_source() else {
                    continue;
                };
                let data =
                    serde_json::to_value(settings).map_err(|e| format!("trigger {i}: {e}"))?;
                crate::event_sources::check(kind, &data)
                    .map_err(|e| format!("trigger {i}: {e}"))?;
                crate::event_sources::check_host(state.event_source_hosts, &data)
                    .map_err(|e| format!("trigger {i}: {e}"))?;
                (kind, data)
            }
        };
        records.push(TriggerRecord {
            trigger_id,
            function: function.to_owned(),
            trigger_type_code: kind.to_owned(),
            trigger_status: "ACTIVE".to_owned(),
            event_data,
            created_time: now.clone(),
            last_updated_time: now.clone(),
        });
    }
    let existing: Vec<TriggerRecord> = store.triggers(Some(function)).map_err(|e| e.to_string())?;
    for old in existing
        .iter()
        .filter(|t| t.trigger_id.starts_with(DIRECTORY))
    {
        if !records.iter().any(|r| r.trigger_id == old.trigger_id) {
            state.timers.stop(&old.trigger_id);
            store
                .delete_trigger(&old.trigger_id)
                .map_err(|e| e.to_string())?;
        }
    }
    for record in &records {
        let same = existing
            .iter()
            .find(|t| t.trigger_id == record.trigger_id)
            .is_some_and(|t| {
                t.event_data == record.event_data && t.trigger_type_code == record.trigger_type_code
            });
        if same {
            continue;
        }
        store
            .put_trigger(&record.trigger_id, &record.function, record)
            .map_err(|e| e.to_string())?;
        start_timer(state, record)?;
    }
    state.apig_routes.reload(state);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_broker_urls_are_masked() {
        for (url, masked) in [
            (
                "amqp://guest:guest@127.0.0.1:5672/%2f",
                Some("amqp://guest:***@127.0.0.1:5672/%2f"),
            ),
            (
                "nats://TOKEN@127.0.0.1:4222",
                Some("nats://***@127.0.0.1:4222"),
            ),
            ("redis://secret@127.0.0.1", Some("redis://***@127.0.0.1")),
            (
                "redis://127.0.0.1/0?password=X&db=1",
                Some("redis://127.0.0.1/0?password=***&db=1"),
            ),
            ("mqtt://u:p@ss@127.0.0.1", Some("mqtt://u:***@127.0.0.1")),
            (
                "nats://127.0.0.1:4222?auth_token=abc",
                Some("nats://127.0.0.1:4222?auth_token=***"),
            ),
            ("redis://127.0.0.1:6379", None),
            ("plain text", None),
        ] {
            assert_eq!(mask_password(url).as_deref(), masked, "{url}");
        }
    }

    #[test]
    fn cluster_ticks_fall_on_shared_boundaries_and_are_named_by_trigger_and_time() {
        let rate = parse_schedule("Rate", "3s", Duration::from_secs(1)).unwrap();
        let (at, wait) = rate.next_tick().unwrap();
        assert_eq!(at % 3000, 0, "a multiple of the period since the epoch");
        assert!(wait <= Duration::from_secs(3));
        let cron = parse_schedule("Cron", "0 * * * * *", Duration::from_secs(1)).unwrap();
        let (at, _) = cron.next_tick().unwrap();
        assert_eq!(at % 60_000, 0, "the cron's next full minute");
        // The same tick has the same id on every node; another does not.
        assert_eq!(tick_request_id("t1", at), tick_request_id("t1", at));
        assert_ne!(tick_request_id("t1", at), tick_request_id("t1", at + 3000));
        assert_ne!(tick_request_id("t1", at), tick_request_id("t2", at));
        assert!(uuid::Uuid::parse_str(&tick_request_id("t1", at)).is_ok());
    }

    #[test]
    fn only_active_apig_triggers_with_a_path_become_routes() {
        let trigger = |kind: &str, status: &str, data: Value| TriggerRecord {
            trigger_id: "id".into(),
            function: "f".into(),
            trigger_type_code: kind.into(),
            trigger_status: status.into(),
            event_data: data,
            created_time: String::new(),
            last_updated_time: String::new(),
        };
        let routes = apig_routes(&[
            trigger(
                "APIG",
                "ACTIVE",
                json!({"path": "/shop/", "req_method": "get"}),
            ),
            trigger("APIG", "ACTIVE", json!({"path": "/any"})),
            trigger("APIG", "DISABLED", json!({"path": "/off"})),
            trigger("APIG", "ACTIVE", json!({"path": "/"})),
            trigger("APIG", "ACTIVE", json!({})),
            trigger("TIMER", "ACTIVE", json!({"path": "/timer"})),
        ]);
        let route = |base: &str, method: &str| ApigRoute {
            base: base.into(),
            method: method.into(),
            function: "f".into(),
        };
        assert_eq!(routes, [route("/shop", "GET"), route("/any", "ANY")]);
    }

    #[test]
    fn rates_and_crons_parse_and_nonsense_does_not() {
        let any = Duration::from_secs(1);
        let parse = |t, s| parse_schedule(t, s, any);
        assert!(
            matches!(parse("Rate", "30s"), Ok(Schedule::Rate(d)) if d == Duration::from_secs(30))
        );
        assert!(
            matches!(parse("Rate", "3m"), Ok(Schedule::Rate(d)) if d == Duration::from_secs(180))
        );
        assert!(
            matches!(parse("Rate", "1d"), Ok(Schedule::Rate(d)) if d == Duration::from_secs(86_400))
        );
        assert!(parse("Rate", "0s").is_err());
        assert!(parse("Rate", "5 parsecs").is_err());
        assert!(parse("Rate", "m").is_err());
        let c = parse("Cron", "0 15 2 * * ?").unwrap();
        assert!(c.next_delay().unwrap() <= Duration::from_secs(86_400));
        assert!(parse("Cron", "*/5 * * * *").is_ok());
        assert!(parse("Cron", "not a cron").is_err());
        assert!(parse("Hourly", "1").is_err());
        assert!("Rate:2h".parse::<Schedule>().is_ok());
    }

    /// `213503982334602d` once wrapped to a rate of 17 hours.
    #[test]
    fn rates_are_checked_not_wrapped() {
        let minute = Duration::from_secs(60);
        for huge in ["213503982334602d", "18446744073709551615s", "367d", "9000h"] {
            let e = parse_schedule("Rate", huge, minute).unwrap_err();
            assert!(e.contains("longer than a year"), "{huge}: {e}");
        }
        assert!(parse_schedule("Rate", "366d", minute).is_ok());
        assert!(parse_schedule("Rate", "99999999999999999999999d", minute).is_err());
        let e = parse_schedule("Rate", "59s", minute).unwrap_err();
        assert!(e.contains("minimum of 60 s"), "{e}");
        assert!(parse_schedule("Rate", "1m", minute).is_ok());
    }

    /// `* * * * * * *` once fired every second on a server whose minimum
    /// rate was 60 s.
    #[test]
    fn crons_obey_the_minimum_rate() {
        let minute = Duration::from_secs(60);
        for fast in [
            "* * * * * * *",
            "* * * * * *",
            "*/30 * * * * *",
            "0,59 * * * * *",
            "* * * 15 * *",
            "* * * 29 2 *",
        ] {
            let e = parse_schedule("Cron", fast, minute).expect_err(fast);
            assert!(e.contains("minimum of 60 s"), "{fast}: {e}");
        }
        for fine in [
            "0 * * * * *",
            "* * * * *",
            "*/5 * * * *",
            "0 15 2 * * ?",
            "0 0 0 29 2 *",
        ] {
            assert!(parse_schedule("Cron", fine, minute).is_ok(), "{fine}");
        }
        // The floor is the server's: a 5-minute floor refuses every minute.
        let e = parse_schedule("Cron", "* * * * *", Duration::from_secs(300)).unwrap_err();
        assert!(e.contains("60 s apart"), "{e}");
        assert!(parse_schedule("Cron", "*/5 * * * *", Duration::from_secs(300)).is_ok());
        // 23:59 then 00:00 across the boundary between two days of the
        // week, and between two months, only.
        for boundary in ["0 0,59 0,23 * * SUN,MON", "0 0,59 0,23 1,31 * *"] {
            let e = parse_schedule("Cron", boundary, Duration::from_secs(300)).expect_err(boundary);
            assert!(e.contains("60 s apart"), "{boundary}: {e}");
        }
    }

    #[test]
    fn apig_paths_may_not_shadow_the_server() {
        let ok = |path: &str| check_apig(&json!({ "path": path })).is_ok();
        assert!(ok("/shop"));
        assert!(ok("/shop/items/"));
        assert!(ok("/v2x"));
        for bad in [
            "/v2",
            "/v2/",
            "/v2/p/fgs/functions",
            "/healthz",
            "/readyz",
            "/metrics",
            "/apig/f",
            "/",
            "",
            "shop",
            "/a/../v2",
            "/a//b",
            "/a b",
            "/V2",
        ] {
            assert!(!ok(bad), "{bad:?} accepted");
        }
        assert!(check_apig(&json!({})).is_err());
        assert!(check_apig(&json!({"path": "/shop", "req_method": "get"})).is_ok());
        assert!(check_apig(&json!({"path": "/shop", "req_method": "BREW"})).is_err());
    }
}
