//! Optional HTTP authentication of the whole API (`rest.auth.type` = `basic` or `bearer`).
//! `GET /health` stays open, for load balancers and orchestrators.

use warp::http::HeaderValue;
use warp::Filter;

/// How clients authenticate.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// No authentication (Kafka Connect's default).
    #[default]
    None,
    /// HTTP basic: accepted `(user, password)` pairs.
    Basic(Vec<(String, String)>),
    /// `Authorization: Bearer <token>`: accepted tokens.
    Bearer(Vec<String>),
}

/// A request without valid credentials.
#[derive(Debug)]
pub(crate) struct Unauthorized {
    pub(crate) message: &'static str,
    pub(crate) challenge: HeaderValue,
}

impl warp::reject::Reject for Unauthorized {}

/// Equal in time independent of where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn decode_basic(value: &str) -> Option<(String, String)> {
    let (scheme, cred) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let text = String::from_utf8(decode_base64(cred.trim())?).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Standard base64 (with or without padding).
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

impl Auth {
    /// Whether a request with this `Authorization` header may proceed.
    fn check(&self, header: Option<&str>) -> Result<(), Unauthorized> {
        match self {
            Auth::None => Ok(()),
            Auth::Basic(users) => {
                let given = header.and_then(decode_basic);
                let ok = given.is_some_and(|(u, p)| {
                    users.iter().any(|(user, pass)| {
                        constant_time_eq(user.as_bytes(), u.as_bytes())
                            & constant_time_eq(pass.as_bytes(), p.as_bytes())
                    })
                });
                ok.then_some(()).ok_or(Unauthorized {
                    message: "Credentials are required to access this resource (HTTP basic authentication)",
                    challenge: HeaderValue::from_static("Basic realm=\"sluice\""),
                })
            }
            Auth::Bearer(tokens) => {
                let given = header.and_then(|h| {
                    let (scheme, token) = h.trim().split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
                });
                let ok = given.is_some_and(|g| tokens.iter().any(|t| constant_time_eq(t.as_bytes(), g.as_bytes())));
                ok.then_some(()).ok_or(Unauthorized {
                    message: "A bearer token is required to access this resource",
                    challenge: HeaderValue::from_static("Bearer realm=\"sluice\""),
                })
            }
        }
    }

    /// A filter that passes authenticated requests (and `GET /health`) and rejects the others.
    pub(crate) fn filter(self) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
        warp::path::full()
            .and(warp::header::optional::<String>("authorization"))
            .and_then(move |path: warp::path::FullPath, header: Option<String>| {
                let result = if path.as_str() == "/health" { Ok(()) } else { self.check(header.as_deref()) };
                async move { result.map_err(warp::reject::custom) }
            })
            .untuple_one()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_bearer() {
        let basic = Auth::Basic(vec![("admin".into(), "s3cret".into())]);
        assert!(basic.check(Some("Basic YWRtaW46czNjcmV0")).is_ok()); // admin:s3cret
        assert!(basic.check(Some("basic YWRtaW46czNjcmV0")).is_ok());
        assert!(basic.check(Some("Basic YWRtaW46d3Jvbmc=")).is_err()); // admin:wrong
        assert!(basic.check(None).is_err());
        assert!(basic.check(Some("Bearer x")).is_err());
        let bearer = Auth::Bearer(vec!["tok-1".into()]);
        assert!(bearer.check(Some("Bearer tok-1")).is_ok());
        assert!(bearer.check(Some("Bearer tok-2")).is_err());
        assert!(Auth::None.check(None).is_ok());
        assert_eq!(decode_base64("YWRtaW46czNjcmV0").as_deref(), Some(&b"admin:s3cret"[..]));
        assert_eq!(decode_base64("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode_base64("a*b"), None);
    }
}
