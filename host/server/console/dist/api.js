// The console's one way to the server: every API call goes through
// `Api.call`, which signs it when the server has access keys.
import { signedHeaders } from "./sign.js";
const SESSION_KEY = "fnhost.console.credentials";
/** An error answer of the API (FunctionGraph's `{error_code, error_msg}`). */
export class ApiError extends Error {
    status;
    code;
    constructor(status, code, message) {
        super(message);
        this.status = status;
        this.code = code;
    }
}
/** The credentials of this tab (session storage only: gone with the tab). */
export function savedSession() {
    const text = sessionStorage.getItem(SESSION_KEY);
    if (!text)
        return null;
    try {
        const s = JSON.parse(text);
        return s.accessKey && s.secretKey ? s : null;
    }
    catch {
        return null;
    }
}
export function saveSession(session) {
    if (session)
        sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    else
        sessionStorage.removeItem(SESSION_KEY);
}
export class Api {
    projectId;
    credentials;
    constructor(projectId, credentials) {
        this.projectId = projectId;
        this.credentials = credentials;
    }
    /** `/v2/{project_id}/fgs/` + `rest`. */
    path(rest) {
        return `/v2/${encodeURIComponent(this.projectId)}/fgs/${rest}`;
    }
    /** `.../functions/{name}` (the URN shortcut `NAME[:QUALIFIER]`) + `rest`. */
    functionPath(name, rest = "") {
        return this.path(`functions/${encodeURIComponent(name)}${rest}`);
    }
    async call(method, path, body, extraHeaders = {}) {
        const url = new URL(path, window.location.origin);
        const headers = { ...extraHeaders };
        let bytes = new Uint8Array();
        if (body instanceof Uint8Array) {
            bytes = body;
        }
        else if (typeof body === "string") {
            bytes = new TextEncoder().encode(body);
        }
        else if (body !== undefined) {
            bytes = new TextEncoder().encode(JSON.stringify(body));
            headers["Content-Type"] = "application/json";
        }
        if (this.credentials) {
            Object.assign(headers, await signedHeaders(this.credentials, method, url, bytes));
        }
        const response = await fetch(url, {
            method,
            headers,
            body: method === "GET" || method === "DELETE" ? undefined : bytes,
            credentials: "omit",
            cache: "no-store",
        });
        const answer = {
            status: response.status,
            headers: response.headers,
            body: new Uint8Array(await response.arrayBuffer()),
        };
        if (response.status >= 400) {
            let code = `HTTP ${response.status}`;
            let message = new TextDecoder().decode(answer.body);
            try {
                const e = JSON.parse(message);
                if (e.error_msg) {
                    code = e.error_code ?? code;
                    message = e.error_msg;
                }
            }
            catch {
                // not JSON: the text as it came
            }
            throw new ApiError(response.status, code, message);
        }
        return answer;
    }
    async json(method, path, body) {
        const answer = await this.call(method, path, body);
        if (answer.body.length === 0)
            return {};
        return JSON.parse(new TextDecoder().decode(answer.body));
    }
    get(path) {
        return this.json("GET", path);
    }
}
/** The base64 of `bytes`. */
export function base64(bytes) {
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
        text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    }
    return btoa(text);
}
