//! A function's lifecycle on a server, over its FunctionGraph API: deploy
//! (create or update code, configuration, instance limits and triggers),
//! publish a version, aliases, triggers, listings. Each operation is one or
//! a few signed requests through [`Client`]; each answers the server's JSON
//! or a [`Failure`] that says whether the server refused the request (its
//! signature or its content) or never answered.

use serde_json::{json, Value};

use crate::client::{Answer, Client, ClientError, Method};

/// Why an operation did not happen (or did not finish).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The server did not answer.
    #[error(transparent)]
    NoAnswer(#[from] ClientError),
    /// The server refused the request's signature (or its absence).
    #[error("the server refused the signature ({status}): {message}; check FNHOST_ACCESS_KEY and FNHOST_SECRET_KEY")]
    Refused {
        /// 401 or 403.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The server refused the request's content, or failed it.
    #[error("the server refused {what} ({status}): {message}")]
    Rejected {
        /// What was sent.
        what: &'static str,
        /// The status.
        status: u16,
        /// The server's message.
        message: String,
    },
}

/// A deploy's failure (the name `fnhost deploy` has always used).
pub type DeployFailure = Failure;

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    /// The function's URN.
    pub urn: String,
    /// Whether it was created (else updated).
    pub created: bool,
    /// Triggers created (the manifest's that did not exist yet).
    pub triggers_created: usize,
}

/// A function's server and project: the operations below.
#[derive(Debug, Clone)]
pub struct Functions<'c> {
    client: &'c Client,
    project: String,
}

/// The base path of project `project`'s functions.
fn functions_path(project: &str) -> String {
    format!(
        "/v2/{}/fgs/functions",
        fnhost_signing::encode(project.as_bytes())
    )
}

fn check(answer: Answer, what: &'static str) -> Result<Answer, Failure> {
    match answer.status {
        200..=299 => Ok(answer),
        status @ (401 | 403) => Err(Failure::Refused {
            status,
            message: answer.error_message(),
        }),
        status => Err(Failure::Rejected {
            what,
            status,
            message: answer.error_message(),
        }),
    }
}

/// One trigger to add: `APIG` or `TIMER` and its `event_data`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTrigger {
    /// `APIG` or `TIMER`.
    pub kind: &'static str,
    /// The trigger's `event_data`.
    pub event_data: Value,
}

impl NewTrigger {
    /// An APIG route: `path` under `/apig/NAME`, `method` (`ANY` when
    /// none).
    pub fn apig(path: &str, method: Option<&str>) -> NewTrigger {
        NewTrigger {
            kind: "APIG",
            event_data: json!({"path": path, "req_method": method.unwrap_or("ANY").to_ascii_uppercase()}),
        }
    }

    /// A timer: `schedule` as the manifest writes it (`Rate 5m`, units s,
    /// m, h, d, or `Cron 0 */5 * * * *`), and the event it delivers.
    pub fn timer(schedule: &str, user_event: Option<&str>) -> Result<NewTrigger, String> {
        let (kind, rest) = fnhost_manifest::split_schedule(schedule).ok_or_else(|| {
            format!("`{schedule}` is not a schedule: use `Rate 5m` (s, m, h, d) or `Cron 0 */5 * * * *`")
        })?;
        Ok(NewTrigger {
            kind: "TIMER",
            event_data: json!({
                "schedule_type": kind,
                "schedule": rest,
                "user_event": user_event.unwrap_or_default(),
            }),
        })
    }
}

impl<'c> Functions<'c> {
    /// The functions of `project` on `client`'s server.
    pub fn new(client: &'c Client, project: &str) -> Functions<'c> {
        Functions {
            client,
            project: project.to_owned(),
        }
    }

    fn base(&self) -> String {
        functions_path(&self.project)
    }

    fn function(&self, name: &str) -> String {
        format!(
            "{}/{}",
            self.base(),
            fnhost_signing::encode(name.as_bytes())
        )
    }

    fn triggers(&self, name: &str) -> String {
        format!(
            "/v2/{}/fgs/triggers/{}",
            fnhost_signing::encode(self.project.as_bytes()),
            fnhost_signing::encode(name.as_bytes())
        )
    }

    fn call(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        what: &'static str,
    ) -> Result<Value, Failure> {
        Ok(check(self.client.json(method, path, body)?, what)?.json())
    }

    /// Every function of the project (`GET .../functions`, all pages).
    pub fn list(&self) -> Result<Vec<Value>, Failure> {
        let mut all = Vec::new();
        loop {
            let path = format!("{}?marker={}&maxitems=400", self.base(), all.len());
            let (path, query) = path.split_once('?').unwrap_or((&path, ""));
            let answer = check(
                self.client
                    .send(Method::GET, path, query, Default::default(), Vec::new())?,
                "the listing",
            )?
            .json();
            let page = answer["functions"].as_array().cloned().unwrap_or_default();
            let count = answer["count"].as_u64().unwrap_or(0);
            let empty = page.is_empty();
            all.extend(page);
            if empty || all.len() as u64 >= count {
                return Ok(all);
            }
        }
    }

    /// A function's configuration (`GET .../config`; `name` may carry a
    /// `:version`).
    pub fn config(&self, name: &str) -> Result<Value, Failure> {
        self.call(
            Method::GET,
            &format!("{}/config", self.function(name)),
            &Value::Null,
            "the function",
        )
    }

    /// Publishes the function's current code and configuration as a new
    /// version (`POST .../versions`); answers the version's record.
    pub fn publish(&self, name: &str, description: Option<&str>) -> Result<Value, Failure> {
        let body = match description {
            Some(d) => json!({ "description": d }),
            None => json!({}),
        };
        self.call(
            Method::POST,
            &format!("{}/versions", self.function(name)),
            &body,
            "the version",
        )
    }

    /// The function's versions, `latest` first.
    pub fn versions(&self, name: &str) -> Result<Vec<Value>, Failure> {
        let answer = self.call(
            Method::GET,
            &format!("{}/versions", self.function(name)),
            &Value::Null,
            "the versions",
        )?;
        Ok(answer["versions"].as_array().cloned().unwrap_or_default())
    }

    /// Creates alias `alias` of `version`, or points it there (with
    /// `weights`, a share of the calls in percent to other versions).
    pub fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        weights: &[(String, u32)],
        description: Option<&str>,
    ) -> Result<Value, Failure> {
        let aliases = format!("{}/aliases", self.function(name));
        let one = format!("{aliases}/{}", fnhost_signing::encode(alias.as_bytes()));
        let mut body = json!({
            "version": version,
            "additional_version_weights": weights.iter().map(|(v, p)| (v.clone(), Value::from(*p))).collect::<serde_json::Map<String, Value>>(),
        });
        if let Some(d) = description {
            body["description"] = d.into();
        }
        let existing = self.client.json(Method::GET, &one, &Value::Null)?;
        match existing.status {
            200 => self.call(Method::PUT, &one, &body, "the alias"),
            404 => {
                body["name"] = alias.into();
                self.call(Method::POST, &aliases, &body, "the alias")
            }
            _ => Err(check(existing, "the alias")
                .err()
                .unwrap_or(Failure::Rejected {
                    what: "the alias",
                    status: 0,
                    message: "unexpected answer".into(),
                })),
        }
    }

    /// The function's aliases.
    pub fn aliases(&self, name: &str) -> Result<Vec<Value>, Failure> {
        let answer = self.call(
            Method::GET,
            &format!("{}/aliases", self.function(name)),
            &Value::Null,
            "the aliases",
        )?;
        Ok(answer.as_array().cloned().unwrap_or_default())
    }

    /// Deletes an alias.
    pub fn delete_alias(&self, name: &str, alias: &str) -> Result<(), Failure> {
        self.call(
            Method::DELETE,
            &format!(
                "{}/aliases/{}",
                self.function(name),
                fnhost_signing::encode(alias.as_bytes())
            ),
            &Value::Null,
            "the alias",
        )
        .map(drop)
    }

    /// The function's triggers.
    pub fn triggers_of(&self, name: &str) -> Result<Vec<Value>, Failure> {
        let answer = self.call(
            Method::GET,
            &self.triggers(name),
            &Value::Null,
            "the trigger listing",
        )?;
        Ok(answer.as_array().cloned().unwrap_or_default())
    }

    /// Adds a trigger (`ACTIVE`); answers its record.
    pub fn add_trigger(&self, name: &str, trigger: &NewTrigger) -> Result<Value, Failure> {
        let body = json!({
            "trigger_type_code": trigger.kind,
            "trigger_status": "ACTIVE",
            "event_data": trigger.event_data,
        });
        self.call(Method::POST, &self.triggers(name), &body, "the trigger")
    }

    /// The path of trigger `id` of `name` (its type read from the listing).
    fn trigger(&self, name: &str, id: &str) -> Result<String, Failure> {
        let all = self.triggers_of(name)?;
        let found =
            all.iter()
                .find(|t| t["trigger_id"] == id)
                .ok_or_else(|| Failure::Rejected {
                    what: "the trigger",
                    status: 404,
                    message: format!("{name} has no trigger `{id}`"),
                })?;
        let kind = found["trigger_type_code"].as_str().unwrap_or_default();
        Ok(format!(
            "{}/{}/{}",
            self.triggers(name),
            fnhost_signing::encode(kind.as_bytes()),
            fnhost_signing::encode(id.as_bytes())
        ))
    }

    /// Enables (`ACTIVE`) or disables (`DISABLED`) a trigger.
    pub fn set_trigger_status(&self, name: &str, id: &str, active: bool) -> Result<Value, Failure> {
        let status = if active { "ACTIVE" } else { "DISABLED" };
        let path = self.trigger(name, id)?;
        self.call(
            Method::PUT,
            &path,
            &json!({ "trigger_status": status }),
            "the trigger",
        )
    }

    /// Deletes a trigger.
    pub fn delete_trigger(&self, name: &str, id: &str) -> Result<(), Failure> {
        let path = self.trigger(name, id)?;
        self.call(Method::DELETE, &path, &Value::Null, "the trigger")
            .map(drop)
    }
}

/// The configuration fields of `manifest` in the API's shape.
fn config_body(manifest: &fnhost_manifest::Manifest) -> serde_json::Value {
    let user_data = if manifest.user_data.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&manifest.user_data).unwrap_or_default()
    };
    serde_json::json!({
        "handler": manifest.handler,
        "memory_size": manifest.memory_mb,
        "timeout": manifest.timeout_s,
        "user_data": user_data,
        "initializer_handler": manifest.initializer_entry().unwrap_or_default(),
        "initializer_timeout": manifest.initializer_timeout_s.unwrap_or(0),
        "isolation": manifest.isolation.unwrap_or_default(),
        "sandbox": manifest.sandbox.clone().unwrap_or_default(),
        "host_functions": manifest.host_functions,
        "concurrent_num": manifest.concurrency.per_instance,
    })
}

/// The manifest's triggers in the API's shape.
fn trigger_bodies(manifest: &fnhost_manifest::Manifest) -> Vec<NewTrigger> {
    manifest
        .triggers
        .iter()
        .filter_map(|t| match t {
            fnhost_manifest::Trigger::Apig { path, method } => {
                Some(NewTrigger::apig(path, Some(method.as_str())))
            }
            fnhost_manifest::Trigger::Timer {
                schedule,
                user_event,
            } => NewTrigger::timer(schedule, user_event.as_deref()).ok(),
            source => source.event_source().and_then(|(kind, settings)| {
                Some(NewTrigger {
                    kind,
                    event_data: serde_json::to_value(settings).ok()?,
                })
            }),
        })
        .collect()
}

/// Creates the function `manifest` describes with the code package `zip`
/// (declaring `runtime`, e.g. `Go1.x`, when it creates it), or updates its code and configuration, then its instance limits, then
/// creates the manifest's triggers the function does not have yet. An
/// update that the server keeps but cannot load (`last_update_status`
/// `Failed`) is an error with the server's reason.
pub fn deploy(
    client: &Client,
    project: &str,
    manifest: &fnhost_manifest::Manifest,
    runtime: &str,
    zip: &[u8],
) -> Result<Deployed, Failure> {
    use base64::Engine as _;
    let base = functions_path(project);
    let name = fnhost_signing::encode(manifest.name.as_bytes());
    let file = base64::engine::general_purpose::STANDARD.encode(zip);
    let existing = client.json(
        Method::GET,
        &format!("{base}/{name}/config"),
        &serde_json::Value::Null,
    )?;
    let (record, created) = match existing.status {
        200 => {
            let code = serde_json::json!({"code_type": "zip", "func_code": {"file": file}});
            check(
                client.json(Method::PUT, &format!("{base}/{name}/code"), &code)?,
                "the code package",
            )?;
            let record = check(
                client.json(
                    Method::PUT,
                    &format!("{base}/{name}/config"),
                    &config_body(manifest),
                )?,
                "the configuration",
            )?;
            (record.json(), false)
        }
        404 => {
            let mut body = config_body(manifest);
            body["func_name"] = manifest.name.clone().into();
            body["package"] = "default".into();
            body["runtime"] = runtime.into();
            body["code_type"] = "zip".into();
            body["func_code"] = serde_json::json!({"file": file});
            body["description"] = "deployed with fnhost deploy".into();
            let record = check(client.json(Method::POST, &base, &body)?, "the function")?;
            (record.json(), true)
        }
        _ => {
            let status = existing.status;
            let message = existing.error_message();
            return Err(match check(existing, "the request") {
                Err(e) => e,
                Ok(_) => Failure::Rejected {
                    what: "the request",
                    status,
                    message,
                },
            });
        }
    };
    if record["last_update_status"] == "Failed" {
        return Err(Failure::Rejected {
            what: "the new code or configuration",
            status: 200,
            message: format!(
                "it is kept but does not load, and the previous version keeps serving: {}",
                record["last_update_status_reason"].as_str().unwrap_or("")
            ),
        });
    }
    let c = &manifest.concurrency;
    check(
        client.json(
            Method::PUT,
            &format!("{base}/{name}/config-max-instance"),
            &serde_json::json!({"max_instance_num": c.max_instances}),
        )?,
        "the instance limit",
    )?;
    check(
        client.json(
            Method::PUT,
            &format!("{base}/{name}/reservedinstances"),
            &serde_json::json!({"count": c.reserved}),
        )?,
        "the reserved instances",
    )?;
    let urn = record["func_urn"].as_str().unwrap_or_default().to_owned();
    let triggers_path = format!(
        "/v2/{}/fgs/triggers/{}",
        fnhost_signing::encode(project.as_bytes()),
        fnhost_signing::encode(urn.as_bytes())
    );
    let listed = check(
        client.json(Method::GET, &triggers_path, &serde_json::Value::Null)?,
        "the trigger listing",
    )?
    .json();
    let have: Vec<(String, serde_json::Value)> = listed
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["trigger_type_code"].as_str().unwrap_or("").to_owned(),
                t["event_data"].clone(),
            )
        })
        .collect();
    let mut triggers_created = 0;
    for NewTrigger { kind, event_data } in trigger_bodies(manifest) {
        let exists = have.iter().any(|(k, data)| {
            k == kind
                && event_data
                    .as_object()
                    .into_iter()
                    .flatten()
                    .all(|(key, value)| &data[key] == value)
        });
        if exists {
            continue;
        }
        let body = serde_json::json!({
            "trigger_type_code": kind,
            "trigger_status": "ACTIVE",
            "event_data": event_data,
        });
        check(
            client.json(Method::POST, &triggers_path, &body)?,
            "a trigger",
        )?;
        triggers_created += 1;
    }
    Ok(Deployed {
        urn,
        created,
        triggers_created,
    })
}
