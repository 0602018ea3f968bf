//! The MIME that S/MIME needs (RFC 8551 §3, RFC 2045, RFC 2046, RFC 1847),
//! and nothing more: header blocks with folding, `Content-Type` and its
//! parameters, base64 transfer encoding, `multipart/signed` with exactly
//! two parts, and the writers for the forms `mesh smime` produces.
//!
//! Sans-io: byte slices in, values or errors out. Inputs are bounded by
//! [`crate::ber::MAX_SIZE`]; header blocks by [`MAX_HEADERS`].

/// The most header lines a block may have before it is refused.
pub const MAX_HEADERS: usize = 256;

/// Why a message is not S/MIME we can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MimeError {
    /// No header block (or no Content-Type) where a MIME message should start.
    #[error("not a MIME message (no header block with a Content-Type)")]
    NotMime,
    /// A MIME message that is not S/MIME.
    #[error("not an S/MIME message (Content-Type: {0})")]
    NotSmime(String),
    /// A structural error: the boundary, the parts, the header block.
    #[error("damaged MIME structure: {0}")]
    Damaged(&'static str),
    /// The base64 body does not decode.
    #[error("the base64 body does not decode")]
    Base64,
    /// A transfer encoding S/MIME bodies do not use.
    #[error("unsupported Content-Transfer-Encoding {0}")]
    Encoding(String),
    /// Over the size or header limits.
    #[error("the message is too large")]
    TooLarge,
}

type Result<T> = std::result::Result<T, MimeError>;

/// A parsed `Content-Type` (RFC 2045 §5.1): lower-cased type and parameter names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    /// `type/subtype`, lower case.
    pub mime: String,
    /// Parameters, names in lower case, values unquoted.
    pub params: Vec<(String, String)>,
}

impl ContentType {
    /// A parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parse a header value.
    pub fn parse(value: &str) -> ContentType {
        let mut parts = split_params(value).into_iter();
        let mime = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let params = parts
            .filter_map(|p| {
                let (n, v) = p.split_once('=')?;
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .map(|v| v.replace("\\\"", "\"").replace("\\\\", "\\"))
                    .unwrap_or_else(|| v.to_string());
                Some((n.trim().to_ascii_lowercase(), v))
            })
            .collect();
        ContentType { mime, params }
    }
}

/// Split at `;` outside quotes.
fn split_params(value: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut escaped) = (Vec::new(), String::new(), false, false);
    for c in value.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

/// A MIME entity: its header block (unfolded) and its body.
#[derive(Debug, Clone)]
pub struct Entity<'a> {
    /// `(name, value)`, names as written, values unfolded and trimmed.
    pub headers: Vec<(String, String)>,
    /// The raw header lines (with folding), for copying to an output.
    pub raw_headers: Vec<&'a [u8]>,
    /// Everything after the blank line.
    pub body: &'a [u8],
}

impl Entity<'_> {
    /// A header's value (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The Content-Type (RFC 2045 §5.2: text/plain when absent).
    pub fn content_type(&self) -> ContentType {
        ContentType::parse(self.header("content-type").unwrap_or("text/plain"))
    }
}

/// Lines of `data` with their start offsets; each line excludes its LF.
fn lines(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= data.len() {
            return None;
        }
        let at = start;
        let end = data[at..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(data.len(), |i| at + i);
        start = end + 1;
        Some((at, &data[at..end]))
    })
}

fn strip_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// A header line's field name (RFC 5322 §2.2: printable ASCII but `:`).
fn field_name(line: &[u8]) -> Option<&str> {
    let i = line.iter().position(|b| *b == b':')?;
    let name = &line[..i];
    (!name.is_empty() && name.iter().all(|b| (33..=126).contains(b)))
        .then(|| std::str::from_utf8(name).ok())
        .flatten()
}

/// Parse a header block and body. The block must end with a blank line and
/// hold at least one header that makes it mail: a `Content-*` or
/// `MIME-Version` header, or an RFC 5322 originator/destination field.
pub fn parse(data: &[u8]) -> Result<Entity<'_>> {
    if data.len() > crate::ber::MAX_SIZE {
        return Err(MimeError::TooLarge);
    }
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut headers: Vec<(String, String)> = Vec::new();
    for (at, line) in lines(data) {
        let l = strip_cr(line);
        if l.is_empty() {
            if !headers.iter().any(|(n, _)| is_mail_header(n)) {
                return Err(MimeError::NotMime);
            }
            return Ok(Entity {
                headers,
                raw_headers: spans.iter().map(|(a, b)| &data[*a..*b]).collect(),
                body: data.get(at + line.len() + 1..).unwrap_or(&[]),
            });
        }
        if headers.len() >= MAX_HEADERS {
            return Err(MimeError::TooLarge);
        }
        let text = String::from_utf8_lossy(l);
        if l[0] == b' ' || l[0] == b'\t' {
            // Folding (RFC 5322 §2.2.3): a continuation of the previous field.
            let (Some(last), Some(span)) = (headers.last_mut(), spans.last_mut()) else {
                return Err(MimeError::NotMime);
            };
            last.1.push(' ');
            last.1.push_str(text.trim());
            span.1 = at + line.len();
            continue;
        }
        let name = field_name(l).ok_or(MimeError::NotMime)?;
        let value = text[name.len() + 1..].trim().to_string();
        headers.push((name.to_string(), value));
        spans.push((at, at + line.len()));
    }
    Err(MimeError::NotMime)
}

fn is_mail_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("content-")
        || matches!(
            n.as_str(),
            "mime-version" | "from" | "to" | "cc" | "subject" | "date" | "message-id" | "sender"
        )
}

/// The body, decoded by its Content-Transfer-Encoding.
pub fn decoded_body(e: &Entity<'_>) -> Result<Vec<u8>> {
    let cte = e
        .header("content-transfer-encoding")
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    match cte.as_str() {
        "base64" => {
            let clean: Vec<u8> = e
                .body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            data_encoding::BASE64
                .decode(&clean)
                .map_err(|_| MimeError::Base64)
        }
        "7bit" | "8bit" | "binary" => Ok(e.body.to_vec()),
        other => Err(MimeError::Encoding(other.to_string())),
    }
}

/// The two parts of a `multipart/signed` body (RFC 1847 §2.1): the signed
/// entity exactly as sent (bytes, without the CRLF that belongs to the
/// next delimiter, RFC 2046 §5.1.1), and the signature entity.
pub fn signed_parts<'a>(body: &'a [u8], boundary: &str) -> Result<(&'a [u8], Entity<'a>)> {
    if boundary.is_empty() || boundary.len() > 70 {
        return Err(MimeError::Damaged("missing or overlong boundary"));
    }
    let delim = format!("--{boundary}");
    let mut starts: Vec<(usize, usize)> = Vec::new(); // (line start, content start)
    let mut closed = None;
    for (at, line) in lines(body) {
        let l = strip_cr(line);
        let Some(rest) = l.strip_prefix(delim.as_bytes()) else {
            continue;
        };
        let trimmed: &[u8] = rest.trim_ascii_end();
        if trimmed == b"--" {
            closed = Some(at);
            break;
        }
        if trimmed.is_empty() {
            starts.push((at, at + line.len() + 1));
        }
    }
    let closed = closed.ok_or(MimeError::Damaged("the closing boundary is missing"))?;
    if starts.len() != 2 {
        return Err(MimeError::Damaged(
            "multipart/signed needs exactly two parts",
        ));
    }
    let part = |from: usize, next_line: usize| -> &'a [u8] {
        let end = next_line.saturating_sub(1); // the LF before the delimiter
        let end = if end > from && body.get(end - 1) == Some(&b'\r') {
            end - 1
        } else {
            end
        };
        body.get(from..end.max(from)).unwrap_or(&[])
    };
    let first = part(starts[0].1, starts[1].0);
    let second = part(starts[1].1, closed);
    let sig = parse_part(second)?;
    Ok((first, sig))
}

/// A body part's entity (a part may have only Content-* headers).
fn parse_part(data: &[u8]) -> Result<Entity<'_>> {
    parse(data).map_err(|_| MimeError::Damaged("the signature part has no header block"))
}

/// Canonical form (RFC 8551 §3.1.1): every line ends in CRLF.
pub fn canonical(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    let mut prev = 0u8;
    for b in data {
        if *b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(*b);
        prev = *b;
    }
    out
}

/// What a user's input becomes before it is protected: the outer header
/// lines (From, To, Subject… stay outside, RFC 8551 §3.1) and the MIME
/// entity to sign or encrypt (its Content-* headers and body). Input that
/// is not mail becomes `text/plain` (UTF-8 text) or a base64
/// `application/octet-stream` entity.
pub fn split_for_protection(input: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let Ok(e) = parse(input) else {
        return (Vec::new(), plain_entity(input));
    };
    let mut outer = Vec::new();
    let mut inner = Vec::new();
    for ((name, _), raw) in e.headers.iter().zip(&e.raw_headers) {
        let n = name.to_ascii_lowercase();
        if n.starts_with("content-") {
            inner.extend_from_slice(raw);
            inner.push(b'\n');
        } else if n != "mime-version" {
            outer.push(raw.to_vec());
        }
    }
    if inner.is_empty() {
        // RFC 2045 §5.2's default, said explicitly (and as UTF-8, a superset).
        inner.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\n");
    }
    inner.push(b'\n');
    inner.extend_from_slice(e.body);
    (outer, canonical(&inner))
}

fn plain_entity(data: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(data) {
        Ok(text) if !text.contains('\0') => {
            let mut e = b"Content-Type: text/plain; charset=utf-8\r\n\r\n".to_vec();
            e.extend_from_slice(&canonical(data));
            e
        }
        _ => {
            let mut e = b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
            e.extend_from_slice(&base64_lines(data));
            e
        }
    }
}

/// Base64 in lines of 64 characters, each ending in CRLF (RFC 2045 §6.8).
pub fn base64_lines(data: &[u8]) -> Vec<u8> {
    let b64 = data_encoding::BASE64.encode(data);
    let mut out = Vec::with_capacity(b64.len() + b64.len() / 32 + 2);
    for chunk in b64.as_bytes().chunks(64) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn outer_block(outer: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for h in outer {
        out.extend_from_slice(&canonical(h.strip_suffix(b"\r").unwrap_or(h)));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    out
}

/// A `multipart/signed` message (RFC 8551 §3.5.3): the entity, canonical,
/// as the first part; the detached signature as `application/pkcs7-signature`.
pub fn write_signed(outer: &[Vec<u8>], entity: &[u8], sig: &[u8], micalg: &str) -> Vec<u8> {
    let mut rnd = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut rnd);
    let boundary = format!("----MESH-{}", data_encoding::HEXUPPER.encode(&rnd));
    let mut out = outer_block(outer);
    out.extend_from_slice(
        format!(
            "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg={micalg}; boundary=\"{boundary}\"\r\n\r\n\
             This is an S/MIME signed message\r\n\r\n--{boundary}\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(entity);
    out.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n\
             Content-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(&base64_lines(sig));
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// An `application/pkcs7-mime` message (RFC 8551 §3.2) of the given
/// smime-type (`signed-data`, `enveloped-data`, `authEnveloped-data`).
pub fn write_pkcs7_mime(outer: &[Vec<u8>], smime_type: &str, der: &[u8]) -> Vec<u8> {
    let mut out = outer_block(outer);
    out.extend_from_slice(
        format!(
            "Content-Type: application/pkcs7-mime; smime-type={smime_type}; name=\"smime.p7m\"\r\n\
             Content-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(&base64_lines(der));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_parameters_quoted_and_folded() {
        let m = b"MIME-Version: 1.0\nContent-Type: multipart/signed;\n\tprotocol=\"application/pkcs7-signature\";\n micalg=sha-256; boundary=\"a;b\"\n\nbody";
        let e = parse(m).expect("mime");
        let ct = e.content_type();
        assert_eq!(ct.mime, "multipart/signed");
        assert_eq!(ct.param("protocol"), Some("application/pkcs7-signature"));
        assert_eq!(ct.param("micalg"), Some("sha-256"));
        assert_eq!(ct.param("boundary"), Some("a;b"));
        assert_eq!(e.body, b"body");
    }

    #[test]
    fn plain_text_is_not_mime() {
        assert_eq!(parse(b"hello\n").err(), Some(MimeError::NotMime));
        assert_eq!(
            parse(b"Note: not mail\n\nbody").err(),
            Some(MimeError::NotMime)
        );
        assert_eq!(parse(b"0\x82\x01").err(), Some(MimeError::NotMime));
    }

    #[test]
    fn multipart_signed_splits_into_exactly_two_parts() {
        let body = b"preamble\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n\r\n--b\nContent-Type: application/pkcs7-signature\nContent-Transfer-Encoding: base64\n\nAAEC\n--b--\n";
        let (first, sig) = signed_parts(body, "b").expect("parts");
        assert_eq!(first, b"Content-Type: text/plain\r\n\r\nhi\r\n");
        assert_eq!(decoded_body(&sig).expect("b64"), [0, 1, 2]);
        let three = b"--b\r\nContent-Type: a/b\r\n\r\nx\r\n--b\r\nContent-Type: a/b\r\n\r\ny\r\n--b\r\nContent-Type: a/b\r\n\r\nz\r\n--b--\r\n";
        assert!(signed_parts(three, "b").is_err());
        assert!(signed_parts(b"--b\r\nContent-Type: a/b\r\n\r\nx\r\n", "b").is_err());
    }

    #[test]
    fn written_forms_parse_back() {
        let (outer, entity) =
            split_for_protection(b"From: a@b\nSubject: s\nContent-Type: text/plain\n\nhi\n");
        assert_eq!(entity, b"Content-Type: text/plain\r\n\r\nhi\r\n");
        let m = write_signed(&outer, &entity, &[1, 2, 3], "sha-256");
        let e = parse(&m).expect("mime");
        assert_eq!(e.header("subject"), Some("s"));
        let ct = e.content_type();
        let (first, sig) = signed_parts(e.body, ct.param("boundary").expect("b")).expect("parts");
        assert_eq!(first, entity.as_slice());
        assert_eq!(decoded_body(&sig).expect("b64"), [1, 2, 3]);
        let m = write_pkcs7_mime(&outer, "enveloped-data", &[9; 100]);
        let e = parse(&m).expect("mime");
        assert_eq!(e.content_type().param("smime-type"), Some("enveloped-data"));
        assert_eq!(decoded_body(&e).expect("b64"), [9; 100]);
        let (_, plain) = split_for_protection(b"just text\n");
        assert_eq!(
            plain,
            b"Content-Type: text/plain; charset=utf-8\r\n\r\njust text\r\n"
        );
    }
}
