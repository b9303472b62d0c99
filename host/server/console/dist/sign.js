// SDK-HMAC-SHA256, as the FunctionGraph SDKs sign and the server checks
// (host/server/src/auth.rs): the canonical request over the method, the
// path, the sorted query, the signed headers and the SHA-256 of the body;
// the string to sign with X-Sdk-Date; an HMAC with the secret key. Here
// through WebCrypto, so the secret never leaves the tab.
const ALGORITHM = "SDK-HMAC-SHA256";
const encoder = new TextEncoder();
function hex(bytes) {
    return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}
export async function sha256Hex(data) {
    return hex(await crypto.subtle.digest("SHA-256", data));
}
async function hmacHex(secret, text) {
    const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    return hex(await crypto.subtle.sign("HMAC", key, encoder.encode(text)));
}
function isUnreserved(b) {
    return ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) ||
        b === 0x2d || b === 0x5f || b === 0x2e || b === 0x7e);
}
/** Percent-encodes every byte but RFC 3986's unreserved ones. */
export function encode(bytes) {
    let out = "";
    for (const b of bytes) {
        out += isUnreserved(b) ? String.fromCharCode(b) : "%" + b.toString(16).toUpperCase().padStart(2, "0");
    }
    return out;
}
/** Decodes `%XX` escapes into bytes (other characters as UTF-8, `+` kept). */
export function decode(s) {
    const out = [];
    const raw = encoder.encode(s);
    const hexDigit = (c) => c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 0x37 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
    for (let i = 0; i < raw.length; i++) {
        if (raw[i] === 0x25 && i + 2 < raw.length) {
            const hi = hexDigit(raw[i + 1]);
            const lo = hexDigit(raw[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out.push((hi << 4) | lo);
                i += 2;
                continue;
            }
        }
        out.push(raw[i]);
    }
    return new Uint8Array(out);
}
export function canonicalUri(path) {
    const decoded = new TextDecoder().decode(decode(path));
    let uri = decoded
        .split("/")
        .map((segment) => encode(encoder.encode(segment)))
        .join("/");
    if (!uri.endsWith("/"))
        uri += "/";
    return uri;
}
export function canonicalQuery(query) {
    const pairs = query
        .split("&")
        .filter((p) => p !== "")
        .map((p) => {
        const at = p.indexOf("=");
        const [k, v] = at < 0 ? [p, ""] : [p.slice(0, at), p.slice(at + 1)];
        return [decode(k), decode(v)];
    });
    const compare = (a, b) => {
        for (let i = 0; i < Math.min(a.length, b.length); i++)
            if (a[i] !== b[i])
                return a[i] - b[i];
        return a.length - b.length;
    };
    pairs.sort((x, y) => compare(x[0], y[0]) || compare(x[1], y[1]));
    return pairs.map(([k, v]) => `${encode(k)}=${encode(v)}`).join("&");
}
/** `YYYYMMDDTHHMMSSZ`. */
export function sdkDate(now) {
    return now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}
/**
 * The headers that sign a request to `url` (`host` and `x-sdk-date` are
 * signed; the body by its hash): `X-Sdk-Date` and `Authorization`.
 */
export async function signedHeaders(credentials, method, url, body, now = new Date()) {
    const date = sdkDate(now);
    const headers = [
        ["host", url.host],
        ["x-sdk-date", date],
    ];
    const canonicalHeaders = headers.map(([k, v]) => `${k}:${v.trim()}\n`).join("");
    const signed = headers.map(([k]) => k).join(";");
    const canonical = [
        method.toUpperCase(),
        canonicalUri(url.pathname),
        canonicalQuery(url.search.replace(/^\?/, "")),
        canonicalHeaders,
        signed,
        await sha256Hex(body),
    ].join("\n");
    const stringToSign = `${ALGORITHM}\n${date}\n${await sha256Hex(encoder.encode(canonical))}`;
    const signature = await hmacHex(credentials.secretKey, stringToSign);
    return {
        "X-Sdk-Date": date,
        Authorization: `${ALGORITHM} Access=${credentials.accessKey}, SignedHeaders=${signed}, Signature=${signature}`,
    };
}
