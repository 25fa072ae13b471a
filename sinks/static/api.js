// Talking to lanewatch serve: JSON API with the optional bearer token, and the WebSocket
// (protocol: docs/websocket.md). The token comes from ?token= in the page address, or is asked
// for once when the server answers 401, and is kept for this browser tab only.

const TOKEN_KEY = "lanewatch-token";

export function token() {
  const fromUrl = new URLSearchParams(location.search).get("token");
  if (fromUrl) sessionStorage.setItem(TOKEN_KEY, fromUrl);
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function askForToken() {
  const given = prompt("This lanewatch server needs its access token (server.auth_token):");
  if (given) sessionStorage.setItem(TOKEN_KEY, given.trim());
  return Boolean(given);
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** fetch() against the API; JSON in and out; asks for the token once on 401. */
export async function api(path, { method = "GET", body, raw = false, retried = false } = {}) {
  const headers = {};
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  if (response.status === 401 && !retried && askForToken()) {
    return api(path, { method, body, raw, retried: true });
  }
  if (!response.ok) {
    let detail = null;
    try { detail = await response.json(); } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, detail);
  }
  return raw ? response : response.json();
}

/**
 * A WebSocket that reconnects by itself (1, 2, 4 ... 15 s) and re-sends its subscription.
 * handlers: onJson(message), onFrame(header, jpegBlob), onState("open" | "closed", reason)
 */
export class LiveSocket {
  constructor(handlers) {
    this.handlers = handlers;
    this.subscription = null;
    this.delay = 1000;
    this.closedByUs = false;
    this.connect();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = token() ? `?token=${encodeURIComponent(token())}` : "";
    const ws = new WebSocket(`${scheme}://${location.host}/ws${query}`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      this.delay = 1000;
      this.handlers.onState("open");
      if (this.subscription) ws.send(JSON.stringify(this.subscription));
    };
    ws.onmessage = (event) => {
      if (typeof event.data === "string") {
        this.handlers.onJson(JSON.parse(event.data));
        return;
      }
      const view = new DataView(event.data);
      const n = view.getUint32(0);
      const header = JSON.parse(new TextDecoder().decode(new Uint8Array(event.data, 4, n)));
      const jpeg = new Blob([new Uint8Array(event.data, 4 + n)], { type: "image/jpeg" });
      this.handlers.onFrame(header, jpeg);
    };
    ws.onclose = (event) => {
      this.handlers.onState("closed", event.reason || `code ${event.code}`);
      if (this.closedByUs) return;
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 15000);
    };
    this.ws = ws;
  }

  /** Follow one stream (the previous one is unsubscribed). */
  follow(stream, video) {
    const previous = this.subscription && this.subscription.streams[0];
    this.subscription = { type: "subscribe", streams: [stream], video: true, ...video };
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (previous && previous !== stream) {
      this.ws.send(JSON.stringify({ type: "unsubscribe", streams: [previous] }));
    }
    this.ws.send(JSON.stringify(this.subscription));
  }
}
