//! Hand-rolled parsing of the few flags the peer binaries take.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::DEFAULT_ADDR;

/// What the raw TCP peer does with the bytes it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Write every byte back to the connection it came from.
    Echo,
    /// Write every byte to every other open connection.
    Fanout,
}

/// Parsed command line shared by all peer binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Worker threads (tokio workers, or mio loops for the raw peer).
    pub threads: usize,
    /// Raw peer mode; always [`Mode::Echo`] for binaries that take no `--mode`.
    pub mode: Mode,
    /// `--tls-cert FILE --tls-key FILE` (PEM): serve TLS. Only the
    /// tokio-tungstenite peer does; the others refuse it.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// One-line usage text for `program`.
pub fn usage(program: &str, allow_mode: bool) -> String {
    let mode = if allow_mode {
        " [--mode echo|fanout]"
    } else {
        ""
    };
    format!(
        "usage: {program} [ADDR] [--threads N]{mode} [--tls-cert FILE --tls-key FILE]   (ADDR defaults to {DEFAULT_ADDR})"
    )
}

impl Args {
    /// Parses `[ADDR] [--threads N]` and, when `allow_mode`, `[--mode echo|fanout]`.
    /// Flags accept both `--flag value` and `--flag=value`.
    pub fn parse<I>(args: I, allow_mode: bool) -> Result<Args, String>
    where
        I: IntoIterator<Item = String>,
    {
        let mut addr: Option<SocketAddr> = None;
        let mut threads = 1usize;
        let mut mode = Mode::Echo;
        let (mut cert, mut key) = (None, None);
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| it.next())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match flag.as_str() {
                "--threads" => {
                    let v = value("--threads")?;
                    threads = match v.parse::<usize>() {
                        Ok(n) if n >= 1 => n,
                        _ => return Err(format!("bad thread count {v:?}")),
                    };
                }
                "--mode" if allow_mode => {
                    mode = match value("--mode")?.as_str() {
                        "echo" => Mode::Echo,
                        "fanout" => Mode::Fanout,
                        other => return Err(format!("unknown mode {other:?}")),
                    };
                }
                "--tls-cert" => cert = Some(PathBuf::from(value("--tls-cert")?)),
                "--tls-key" => key = Some(PathBuf::from(value("--tls-key")?)),
                "-h" | "--help" => return Err("help requested".to_string()),
                f if f.starts_with('-') => return Err(format!("unknown flag {f:?}")),
                _ if addr.is_none() => {
                    addr = Some(arg.parse().map_err(|_| format!("bad address {arg:?}"))?);
                }
                _ => return Err(format!("unexpected argument {arg:?}")),
            }
        }
        let addr = match addr {
            Some(a) => a,
            None => DEFAULT_ADDR.parse().expect("default address parses"),
        };
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err("--tls-cert and --tls-key go together".to_string()),
        };
        Ok(Args {
            addr,
            threads,
            mode,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str], allow_mode: bool) -> Result<Args, String> {
        Args::parse(v.iter().map(|s| s.to_string()), allow_mode)
    }

    #[test]
    fn defaults() {
        let a = parse(&[], true).unwrap();
        assert_eq!(a.addr, DEFAULT_ADDR.parse().unwrap());
        assert_eq!(a.threads, 1);
        assert_eq!(a.mode, Mode::Echo);
    }

    #[test]
    fn all_flags_both_spellings() {
        let a = parse(&["0.0.0.0:80", "--threads", "4", "--mode=fanout"], true).unwrap();
        assert_eq!(a.addr, "0.0.0.0:80".parse().unwrap());
        assert_eq!(a.threads, 4);
        assert_eq!(a.mode, Mode::Fanout);
        let b = parse(&["--threads=2", "127.0.0.1:1"], false).unwrap();
        assert_eq!(b.threads, 2);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse(&["--mode", "echo"], false).is_err());
        assert!(parse(&["--threads", "0"], true).is_err());
        assert!(parse(&["--threads"], true).is_err());
        assert!(parse(&["nonsense"], true).is_err());
        assert!(parse(&["127.0.0.1:1", "127.0.0.1:2"], true).is_err());
        assert!(parse(&["--bogus"], true).is_err());
        assert!(parse(&["--tls-cert", "c.pem"], true).is_err());
    }

    #[test]
    fn tls_files() {
        let a = parse(&["--tls-cert", "c.pem", "--tls-key=k.pem"], false).unwrap();
        assert_eq!(a.tls, Some(("c.pem".into(), "k.pem".into())));
        assert_eq!(parse(&[], false).unwrap().tls, None);
    }
}
