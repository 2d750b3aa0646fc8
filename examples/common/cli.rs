//! The command line the examples share: `[ADDR] [--redis URL] [--tls-cert FILE
//! --tls-key FILE]` (echo takes no `--redis`).

#![allow(dead_code, reason = "each example uses part of it")]

use std::io::{Error, ErrorKind, Result};

/// What the command line asked for.
pub struct Args {
    /// The address to bind (default `127.0.0.1:9001`).
    pub addr: String,
    /// The Redis URL of `--redis`, if given.
    pub redis: Option<String>,
    /// The PEM certificate chain and key files of `--tls-cert` and `--tls-key`: serve
    /// TLS (`wss://`, `https://`).
    pub tls: Option<(String, String)>,
}

impl Args {
    /// Parses the process's arguments; `InvalidInput` when an option lacks its value,
    /// or only one of `--tls-cert` and `--tls-key` is given.
    pub fn parse() -> Result<Self> {
        let (mut addr, mut redis, mut cert, mut key) = (None, None, None, None);
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let slot = match arg.as_str() {
                "--redis" => &mut redis,
                "--tls-cert" => &mut cert,
                "--tls-key" => &mut key,
                _ => {
                    addr = Some(arg);
                    continue;
                }
            };
            let value = args.next().ok_or_else(|| {
                Error::new(ErrorKind::InvalidInput, format!("{arg} needs a value"))
            })?;
            *slot = Some(value);
        }
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "--tls-cert and --tls-key go together",
                ));
            }
        };
        Ok(Self {
            addr: addr.unwrap_or_else(|| "127.0.0.1:9001".into()),
            redis,
            tls,
        })
    }

    /// `builder`, serving TLS if the command line asked for it.
    pub fn tls(&self, builder: wavecore::ServerBuilder) -> wavecore::ServerBuilder {
        match &self.tls {
            Some((cert, key)) => builder.tls_pem_files(cert, key),
            None => builder,
        }
    }

    /// `ws` or `wss`, for the log line.
    pub fn ws_scheme(&self) -> &'static str {
        if self.tls.is_some() { "wss" } else { "ws" }
    }

    /// `http` or `https`, for the log line.
    pub fn http_scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}
