// The page's bearer token: given in the URL fragment (/#token=...), which never reaches a
// server log or a Referer; kept for this tab in sessionStorage and taken out of the address
// bar, so it does not end up in screenshots or bookmarks. An open server needs none.

const KEY = "framesmith-token";

function fromFragment() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return null;
  const token = decodeURIComponent(m[1]);
  sessionStorage.setItem(KEY, token);
  history.replaceState(null, "", location.pathname + location.search);
  return token;
}

const token = fromFragment() || sessionStorage.getItem(KEY) || "";

export function authHeaders(headers = {}) {
  return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
}

// A refusal a person can act on: what the server said, and what to do about a token.
export function refusal(status, body) {
  if (status === 401) return `not allowed in (401): open this page with a token, /#token=… (${body})`;
  if (status === 403) return `this token's role may not do that (403): ${body}`;
  return `${status}: ${body}`;
}
