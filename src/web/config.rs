//! The `[http]` table: where the web page, the JSON API and `/metrics` listen, and the bearer
//! token a non-loopback address requires (read from its file in the machine step).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::mqtt::Secret;

/// `[http]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawHttp {
    pub listen: Option<String>,
    pub token_file: Option<PathBuf>,
}

/// The validated `[http]` table; the server runs when `listen` is set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpSettings {
    /// Address and port to listen on.
    pub listen: Option<SocketAddr>,
    /// The file holding the bearer token.
    pub token_file: Option<PathBuf>,
    /// The token, once read from `token_file`.
    pub token: Option<Secret>,
}

/// The shortest token accepted: guessing it must be hopeless.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Checks `[http]`; relative paths are taken from `base` (the configuration's folder).
pub(crate) fn validate(
    raw: &RawHttp,
    base: &Path,
    err: &mut impl FnMut(&str, String),
) -> HttpSettings {
    let token_file = raw.token_file.as_ref().map(|f| base.join(f));
    let listen = raw.listen.as_deref().and_then(|s| match s.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            err(
                "http.listen",
                format!("{s:?} is not an address and port (e.g. \"127.0.0.1:8080\" or \"[::1]:8080\")"),
            );
            None
        }
    });
    if let Some(a) = listen {
        if !a.ip().is_loopback() && token_file.is_none() {
            err(
                "http.listen",
                format!(
                    "{a} is reachable from other machines: set http.token_file (a file with a \
                     bearer token of at least {MIN_TOKEN_CHARS} characters) or listen on \
                     127.0.0.1; the page shows what the microphone hears"
                ),
            );
        }
    }
    if token_file.is_some() && listen.is_none() && raw.listen.is_none() {
        err(
            "http.token_file",
            "is for http.listen, which is not set".into(),
        );
    }
    HttpSettings {
        listen,
        token_file,
        token: None,
    }
}

/// Reads the token file (trimmed); problems go to `err` under `http.token_file`.
pub(crate) fn read(http: &mut HttpSettings, err: &mut impl FnMut(&str, String)) {
    let Some(f) = &http.token_file else {
        return;
    };
    match std::fs::read_to_string(f) {
        Ok(s) if s.trim().chars().count() >= MIN_TOKEN_CHARS => {
            http.token = Some(Secret(s.trim().to_owned()))
        }
        Ok(_) => err(
            "http.token_file",
            format!(
                "{}: the token must have at least {MIN_TOKEN_CHARS} characters",
                f.display()
            ),
        ),
        Err(e) => err("http.token_file", format!("{}: {e}", f.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(listen: Option<&str>, token: Option<&str>) -> (HttpSettings, Vec<(String, String)>) {
        let mut errs = Vec::new();
        let raw = RawHttp {
            listen: listen.map(Into::into),
            token_file: token.map(Into::into),
        };
        let s = validate(&raw, Path::new("/etc/s"), &mut |k: &str, m| {
            errs.push((k.to_owned(), m))
        });
        (s, errs)
    }

    #[test]
    fn loopback_needs_no_token_and_other_addresses_do() {
        let (s, e) = check(Some("127.0.0.1:8080"), None);
        assert!(e.is_empty() && s.listen.is_some());
        let (_, e) = check(Some("0.0.0.0:8080"), None);
        assert_eq!(e.len(), 1);
        assert!(e[0].1.contains("set http.token_file"), "{e:?}");
        let (s, e) = check(Some("[::]:80"), Some("token"));
        assert!(e.is_empty());
        assert_eq!(s.token_file.as_deref(), Some(Path::new("/etc/s/token")));
        let (_, e) = check(Some("localhost"), None);
        assert!(e[0].1.contains("not an address and port"), "{e:?}");
        let (_, e) = check(None, Some("t"));
        assert_eq!(e[0].0, "http.token_file");
    }

    #[test]
    fn short_or_missing_tokens_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("t");
        std::fs::write(&f, "short\n").expect("write");
        let mut s = HttpSettings {
            token_file: Some(f.clone()),
            ..Default::default()
        };
        let mut errs = Vec::new();
        read(&mut s, &mut |k: &str, m| errs.push((k.to_owned(), m)));
        assert!(errs[0].1.contains("at least 16"), "{errs:?}");
        std::fs::write(&f, "0123456789abcdef0123\n").expect("write");
        errs.clear();
        read(&mut s, &mut |k: &str, m| errs.push((k.to_owned(), m)));
        assert!(errs.is_empty());
        assert_eq!(
            s.token.as_ref().map(|t| t.0.as_str()),
            Some("0123456789abcdef0123")
        );
    }
}
