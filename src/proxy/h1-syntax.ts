/**
 * The byte-level rules of RFC 9110/9112 that the proxy's answer parser
 * (h1-connection.ts) applies, as pure functions over latin1 strings (one
 * char per byte, so nothing is lost or changed in decoding). Where the RFCs
 * leave a choice, they follow llhttp's default (strict) mode, which is what
 * node:http and undici do: test/h1-differential.test.ts checks the parser
 * against node:http on random answers.
 */

/** tchar (RFC 9110 5.6.2): what header names and chunk-extension names are made of. */
const tchar = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") tchar[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) tchar[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) tchar[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) tchar[c] = 1;

/** field-vchar, SP and HTAB (RFC 9110 5.5): no control characters and no DEL. */
const fieldChar = new Uint8Array(256);
fieldChar[9] = 1;
for (let c = 0x20; c <= 0xff; c++) if (c !== 0x7f) fieldChar[c] = 1;

/** qdtext of a quoted-string (RFC 9110 5.6.4). */
const qdtext = new Uint8Array(256);
qdtext[9] = 1;
for (let c = 0x20; c <= 0xff; c++) if (c !== 0x22 && c !== 0x5c && c !== 0x7f) qdtext[c] = 1;

/** Whether `s[start, end)` is a non-empty token. */
export function isToken(s: string, start: number, end: number): boolean {
  if (start >= end) return false;
  for (let i = start; i < end; i++) if (tchar[s.charCodeAt(i)] !== 1) return false;
  return true;
}

/** Optional whitespace (RFC 9110 5.6.3) is SP and HTAB only: never U+00A0 or other Unicode spaces. */
export function isOws(c: number): boolean {
  return c === 32 || c === 9;
}

/** Whether `s[start, end)` may be a field value (after OWS was trimmed): no CR, LF, NUL or other controls. */
export function isFieldValue(s: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (fieldChar[s.charCodeAt(i)] !== 1) return false;
  return true;
}

/** Chunk sizes above this many significant hex digits (2^48 bytes) are refused, not parsed. */
const maxChunkSizeDigits = 12;

/**
 * The size in a chunk-size line without its CRLF (`1a;name=value;x="q"`), or
 * -1 when llhttp's strict mode refuses the line: hex digits, then
 * extensions with token names and token or quoted-string values, no
 * whitespace anywhere (RFC 9112 7.1.1 allows BWS around them, but node's own
 * client refuses it). llhttp also takes an empty name or value (`;=x`,
 * `;a=`, `;a;;b`) but not a `;` at the end of the line: so does this.
 */
export function parseChunkSize(line: string): number {
  const n = line.length;
  let i = 0;
  let size = 0;
  let significant = 0;
  for (; i < n; i++) {
    const c = line.charCodeAt(i);
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1;
    if (d < 0) break;
    if (size > 0 || d > 0) significant++;
    if (significant > maxChunkSizeDigits) return -1;
    size = size * 16 + d;
  }
  if (i === 0) return -1;
  if (i === n) return size;
  if (line.charCodeAt(i++) !== 59 /* ; */) return -1;
  // After each ";": a name, then "=" and a value, or ";" again, or the end.
  for (;;) {
    if (i === n || line.charCodeAt(i) === 32) return -1;
    while (i < n && tchar[line.charCodeAt(i)] === 1) i++;
    if (i === n) return size;
    let c = line.charCodeAt(i++);
    if (c === 59) continue;
    if (c !== 61 /* = */) return -1;
    for (;;) {
      if (i === n) return size;
      c = line.charCodeAt(i);
      if (tchar[c] === 1) i++;
      else if (c === 34 /* " */) {
        i = quotedStringEnd(line, i);
        if (i < 0) return -1;
        if (i === n) return size;
        if (line.charCodeAt(i++) !== 59) return -1;
        break;
      } else if (c === 59) {
        i++;
        break;
      } else return -1;
    }
  }
}

/** The index after the quoted-string opening at `start`, or -1 when it is not one. */
function quotedStringEnd(s: string, start: number): number {
  for (let i = start + 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 34) return i + 1;
    if (c === 92 /* \ */) {
      i++;
      if (i >= s.length || fieldChar[s.charCodeAt(i)] !== 1) return -1;
    } else if (qdtext[c] !== 1) return -1;
  }
  return -1;
}

/**
 * `timeout=N` of a Keep-Alive header (RFC 2068 19.7.1.1; node's own server
 * sends `Keep-Alive: timeout=5` on every answer) in ms, or -1 when there is
 * none. Scanned in place: no string is made per answer.
 */
export function keepAliveTimeoutMs(value: string): number {
  const n = value.length;
  for (let at = 0; at + 8 <= n; at++) {
    if (at > 0) {
      const before = value.charCodeAt(at - 1);
      if (!isOws(before) && before !== 44 /* , */) continue;
    }
    let k = 0;
    while (k < 7 && (value.charCodeAt(at + k) | 0x20) === timeoutCodes[k]) k++;
    if (k < 7 || value.charCodeAt(at + 7) !== 61 /* = */) continue;
    let i = at + 8;
    let ms = 0;
    for (; i < n && i - at - 8 < 9; i++) {
      const d = value.charCodeAt(i) - 48;
      if (d < 0 || d > 9) break;
      ms = ms * 10 + d;
    }
    if (i === at + 8 || (i < n && value.charCodeAt(i) !== 44 && !isOws(value.charCodeAt(i)))) return -1;
    return ms * 1000;
  }
  return -1;
}

const timeoutCodes = Array.from("timeout", (c) => c.charCodeAt(0));

/**
 * Checks a field line `name ":" OWS value OWS` in `s[start, end)` (without
 * its CRLF): a token name right before the colon (`Content-Length : 5` is
 * refused, RFC 9112 5.1) and a value without control characters. Returns
 * the colon's index, or -1.
 */
export function fieldLineColon(s: string, start: number, end: number): number {
  const colon = s.indexOf(":", start);
  if (colon < 0 || colon >= end || !isToken(s, start, colon)) return -1;
  return isFieldValue(s, colon + 1, end) ? colon : -1;
}

/**
 * A Content-Length value from after its leading OWS to the end of the line:
 * digits, then only SP (llhttp refuses a trailing HTAB there). Returns the
 * length, or -1 (also above 15 significant digits: no answer is a petabyte).
 */
export function contentLengthValue(s: string, start: number, end: number): number {
  let i = start;
  let n = 0;
  let significant = 0;
  for (; i < end; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) break;
    if (n > 0 || c > 0) significant++;
    n = n * 10 + c;
  }
  if (i === start || significant > 15) return -1;
  for (; i < end; i++) if (s.charCodeAt(i) !== 32) return -1;
  return n;
}

/**
 * Whether a Transfer-Encoding value (from after its leading OWS to the end
 * of the line) ends in the chunked coding, as llhttp reads it: the last
 * comma-separated coding is `chunked` in any case, followed by SP only.
 */
export function endsInChunked(s: string, start: number, end: number): boolean {
  let e = end;
  while (e > start && s.charCodeAt(e - 1) === 32) e--;
  const b = e - 7;
  if (b < start) return false;
  for (let i = 0; i < 7; i++) if ((s.charCodeAt(b + i) | 0x20) !== chunkedCodes[i]) return false;
  let p = b;
  while (p > start && isOws(s.charCodeAt(p - 1))) p--;
  return p === start || s.charCodeAt(p - 1) === 44 /* , */;
}

const chunkedCodes = Array.from("chunked", (c) => c.charCodeAt(0));
