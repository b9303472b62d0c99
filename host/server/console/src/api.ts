// The console's one way to the server: every API call goes through
// `Api.call`, which signs it when the server has access keys.

import { Credentials, signedHeaders } from "./sign.js";

const SESSION_KEY = "fnhost.console.credentials";

/** An error answer of the API (FunctionGraph's `{error_code, error_msg}`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Answer {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

export interface Session extends Credentials {
  projectId: string;
}

/** The credentials of this tab (session storage only: gone with the tab). */
export function savedSession(): Session | null {
  const text = sessionStorage.getItem(SESSION_KEY);
  if (!text) return null;
  try {
    const s = JSON.parse(text) as Session;
    return s.accessKey && s.secretKey ? s : null;
  } catch {
    return null;
  }
}

export function saveSession(session: Session | null): void {
  if (session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(SESSION_KEY);
}

export class Api {
  constructor(
    readonly projectId: string,
    private readonly credentials: Credentials | null,
  ) {}

  /** `/v2/{project_id}/fgs/` + `rest`. */
  path(rest: string): string {
    return `/v2/${encodeURIComponent(this.projectId)}/fgs/${rest}`;
  }

  /** `.../functions/{name}` (the URN shortcut `NAME[:QUALIFIER]`) + `rest`. */
  functionPath(name: string, rest = ""): string {
    return this.path(`functions/${encodeURIComponent(name)}${rest}`);
  }

  async call(
    method: string,
    path: string,
    body?: Uint8Array | string | object,
    extraHeaders: Record<string, string> = {},
  ): Promise<Answer> {
    const url = new URL(path, window.location.origin);
    const headers: Record<string, string> = { ...extraHeaders };
    let bytes: Uint8Array = new Uint8Array();
    if (body instanceof Uint8Array) {
      bytes = body;
    } else if (typeof body === "string") {
      bytes = new TextEncoder().encode(body);
    } else if (body !== undefined) {
      bytes = new TextEncoder().encode(JSON.stringify(body));
      headers["Content-Type"] = "application/json";
    }
    if (this.credentials) {
      Object.assign(headers, await signedHeaders(this.credentials, method, url, bytes));
    }
    const response = await fetch(url, {
      method,
      headers,
      body: method === "GET" || method === "DELETE" ? undefined : (bytes as BufferSource),
      credentials: "omit",
      cache: "no-store",
    });
    const answer: Answer = {
      status: response.status,
      headers: response.headers,
      body: new Uint8Array(await response.arrayBuffer()),
    };
    if (response.status >= 400) {
      let code = `HTTP ${response.status}`;
      let message = new TextDecoder().decode(answer.body);
      try {
        const e = JSON.parse(message) as { error_code?: string; error_msg?: string };
        if (e.error_msg) {
          code = e.error_code ?? code;
          message = e.error_msg;
        }
      } catch {
        // not JSON: the text as it came
      }
      throw new ApiError(response.status, code, message);
    }
    return answer;
  }

  async json<T>(method: string, path: string, body?: object): Promise<T> {
    const answer = await this.call(method, path, body);
    if (answer.body.length === 0) return {} as T;
    return JSON.parse(new TextDecoder().decode(answer.body)) as T;
  }

  get<T>(path: string): Promise<T> {
    return this.json<T>("GET", path);
  }
}

// What the API answers, as far as the console reads it.

export interface FunctionRecord {
  func_urn: string;
  func_name: string;
  package: string;
  runtime: string;
  handler: string;
  memory_size: number;
  timeout: number;
  user_data: string;
  digest: string;
  code_size: number;
  version: string;
  description: string;
  last_modified: string;
  isolation: string;
  sandbox?: Sandbox;
  strategy_config?: { concurrency: number; concurrent_num: number };
  last_update_status: string;
  last_update_status_reason: string;
}

/** What a function's sandboxed workers may reach (process isolation). */
export interface Sandbox {
  network: string;
  allow_outbound: string[];
  tmp_mb: number;
  env: string[];
  read_only_paths: string[];
}

export interface Stats {
  invocations: number;
  errors: number;
  p50_ms: number | null;
  p99_ms: number | null;
}

export interface VersionSeries extends Stats {
  version: string;
  buckets: (Stats & { start_ms: number })[];
}

export interface Activity {
  func_name: string;
  minutes: number;
  bucket_seconds: number;
  versions: VersionSeries[];
}

export interface DeployEvent {
  sequence: number;
  kind: string;
  generation: number;
  digest: string;
  replaced_generation: number | null;
  at_ms: number;
  deploy_ms: number;
  drained_ms: number | null;
  replaced_still_serves: boolean;
  in_flight_at_swap: number;
  drain_abandoned: boolean;
}

export interface AliasRecord {
  name: string;
  version: string;
  description: string;
  additional_version_weights: Record<string, number>;
}

export interface TriggerRecord {
  trigger_id: string;
  trigger_type_code: string;
  trigger_status: string;
  event_data: Record<string, unknown>;
  /** Why an active event source cannot consume (with trigger_status ERROR). */
  status_reason?: string;
  /** An event source's messages not yet handled (fnhost's field). */
  lag?: number;
}

/** The base64 of `bytes`. */
export function base64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}
