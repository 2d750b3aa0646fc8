//! Allowed origins: which web pages may open a WebSocket to this server (RFC 6455
//! §10.2). A browser sends the page's origin in `Origin` with every upgrade and lets
//! any page connect anywhere; the server is the only one who can say no, and without
//! that any site a user visits can use the user's cookies on this server (cross-site
//! WebSocket hijacking).

/// The origins whose pages may upgrade (see [`crate::admission::AdmissionConfig::allowed_origins`]).
///
/// A pattern is an origin as a browser sends it, `scheme://host[:port]`, compared
/// without regard to case:
///
/// * `https://app.example.com`: exactly that origin (port 443, explicit or not);
/// * `https://*.example.com`: any subdomain of `example.com` over https (not
///   `example.com` itself: list it too);
/// * `*.example.com` or `app.example.com` without a scheme: over http or https;
/// * `http://localhost:8080`: that port only (a pattern without a port allows only
///   the scheme's default port);
/// * `null`: the opaque origin of sandboxed frames and `file:` pages (rarely wise).
///
/// Requests without `Origin` (clients other than browsers) are allowed unless
/// [`AllowedOrigins::allow_missing`] says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigins {
    patterns: Vec<Pattern>,
    allow_missing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// `None`: http or https.
    scheme: Option<String>,
    /// Lowercase; for a wildcard, the suffix after `*` (starting with `.`).
    host: String,
    wildcard: bool,
    /// `None`: the scheme's default port.
    port: Option<u16>,
}

impl Default for AllowedOrigins {
    fn default() -> Self {
        Self::new()
    }
}

impl AllowedOrigins {
    /// No origin allowed yet; requests without `Origin` allowed.
    pub fn new() -> Self {
        Self {
            patterns: Vec::new(),
            allow_missing: true,
        }
    }

    /// Allows the origins `pattern` matches (see the type's docs); returns `self`.
    /// A pattern that cannot match anything a browser sends (empty, a path, a bad
    /// port) is kept and matches nothing.
    pub fn allow(mut self, pattern: &str) -> Self {
        self.patterns.push(Pattern::parse(pattern));
        self
    }

    /// Whether a request without an `Origin` header may upgrade (default true:
    /// browsers always send one, other clients usually do not).
    pub fn allow_missing(mut self, allow: bool) -> Self {
        self.allow_missing = allow;
        self
    }

    /// Whether a request whose `Origin` is `origin` (`None`: no header) may upgrade.
    pub fn allows(&self, origin: Option<&[u8]>) -> bool {
        let Some(origin) = origin else {
            return self.allow_missing;
        };
        let Ok(origin) = std::str::from_utf8(origin) else {
            return false;
        };
        let origin = origin.trim().to_ascii_lowercase();
        if origin == "null" {
            return self
                .patterns
                .iter()
                .any(|p| p.host == "null" && p.scheme.is_none());
        }
        let Some((scheme, host, port)) = split(&origin) else {
            return false;
        };
        let Some(port) = port.or_else(|| default_port(scheme)) else {
            return false;
        };
        self.patterns.iter().any(|p| p.matches(scheme, host, port))
    }
}

impl Pattern {
    fn parse(text: &str) -> Self {
        let text = text.trim().to_ascii_lowercase();
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (Some(scheme.to_owned()), rest.to_owned()),
            None => (None, text),
        };
        // A pattern with a path or a bad port keeps an empty host: it matches nothing.
        let (host, port) = split_port(&rest).unwrap_or(("", None));
        let (wildcard, host) = match host.strip_prefix('*') {
            Some(suffix) if suffix.starts_with('.') => (true, suffix.to_owned()),
            _ => (false, host.to_owned()),
        };
        Self {
            scheme,
            host,
            wildcard,
            port,
        }
    }

    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = match &self.scheme {
            Some(s) => s == scheme,
            None => scheme == "http" || scheme == "https",
        };
        let host_ok = if self.wildcard {
            host.len() > self.host.len() && host.ends_with(self.host.as_str())
        } else {
            !self.host.is_empty() && host == self.host
        };
        let port_ok = match self.port {
            Some(p) => p == port,
            None => default_port(scheme) == Some(port),
        };
        scheme_ok && host_ok && port_ok
    }
}

/// `scheme://host[:port]` (no path) into its parts.
fn split(origin: &str) -> Option<(&str, &str, Option<u16>)> {
    let (scheme, rest) = origin.split_once("://")?;
    let (host, port) = split_port(rest)?;
    (!host.is_empty()).then_some((scheme, host, port))
}

/// `host[:port]` (an IPv6 host in brackets) into its parts; `None` for a path or a
/// bad port.
fn split_port(text: &str) -> Option<(&str, Option<u16>)> {
    if text.contains('/') {
        return None;
    }
    let colon = match text.rfind(':') {
        Some(i) if !text[i..].contains(']') => i,
        _ => return Some((text, None)),
    };
    let port = text[colon + 1..].parse().ok()?;
    Some((&text[..colon], Some(port)))
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" | "wss" => Some(443),
        "http" | "ws" => Some(80),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(origins: &AllowedOrigins, origin: &str) -> bool {
        origins.allows(Some(origin.as_bytes()))
    }

    #[test]
    fn exact_wildcard_scheme_and_port() {
        let origins = AllowedOrigins::new()
            .allow("https://app.example.com")
            .allow("https://*.example.org")
            .allow("chat.example.net")
            .allow("http://localhost:8080");
        assert!(allows(&origins, "https://app.example.com"));
        assert!(allows(&origins, "HTTPS://App.Example.COM"));
        assert!(allows(&origins, "https://app.example.com:443"));
        assert!(!allows(&origins, "https://app.example.com:8443"));
        assert!(!allows(&origins, "http://app.example.com"));
        assert!(!allows(&origins, "https://evil-app.example.com"));
        assert!(!allows(&origins, "https://app.example.com.evil.net"));
        assert!(allows(&origins, "https://a.b.example.org"));
        assert!(!allows(&origins, "https://example.org"));
        assert!(!allows(&origins, "https://evilexample.org"));
        assert!(allows(&origins, "http://chat.example.net"));
        assert!(allows(&origins, "https://chat.example.net"));
        assert!(allows(&origins, "http://localhost:8080"));
        assert!(!allows(&origins, "http://localhost"));
        assert!(!allows(&origins, "null"));
        assert!(!allows(&origins, "garbage"));
        assert!(!origins.allows(Some(b"\xff\xfe")));
        assert!(origins.allows(None));
        assert!(!origins.clone().allow_missing(false).allows(None));
        assert!(allows(&AllowedOrigins::new().allow("null"), "null"));
        assert!(allows(
            &AllowedOrigins::new().allow("http://[::1]:3000"),
            "http://[::1]:3000"
        ));
        assert!(!allows(&AllowedOrigins::new().allow("*"), "https://a.com"));
    }
}
