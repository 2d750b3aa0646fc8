//! Reading a wavecore server's own counters from its `/metrics` endpoint (Prometheus
//! text format), so a soak can say what the server did to its slow consumers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long the scrape may take (connect, write, read), each step.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The counters a soak reports, as the server counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerCounters {
    /// Connections closed with 1008 for passing `max_backpressure`.
    pub backpressure_closes: f64,
    /// Messages dropped under `max_backpressure` (the `Drop` policy).
    pub dropped_messages: f64,
    /// Connections dropped because no pong came within `pong_timeout`.
    pub idle_timeouts: f64,
}

/// Fetches `GET /metrics` from the server at `addr` (`host` as the `Host` field);
/// `None` if it cannot be read or has none of wavecore's counters.
pub fn scrape(addr: SocketAddr, host: &str) -> Option<ServerCounters> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).ok()?;
    stream.set_read_timeout(Some(TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(TIMEOUT)).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    Some(ServerCounters {
        backpressure_closes: counter(body, "wavecore_backpressure_closes_total")?,
        dropped_messages: counter(body, "wavecore_dropped_messages_total")?,
        idle_timeouts: counter(body, "wavecore_idle_timeouts_total")?,
    })
}

/// The value of the sample `name` (without labels) in a text exposition.
fn counter(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (metric, value) = line.split_once(' ')?;
            (metric == name).then(|| value.trim().parse().ok())?
        })
}

#[cfg(test)]
mod tests {
    use super::counter;

    #[test]
    fn reads_a_sample_by_its_whole_name() {
        let body = "# HELP wavecore_idle_timeouts_total x\n\
                    wavecore_idle_timeouts_total_other 9\n\
                    wavecore_idle_timeouts_total 17\n";
        assert_eq!(counter(body, "wavecore_idle_timeouts_total"), Some(17.0));
        assert_eq!(counter(body, "wavecore_missing_total"), None);
    }
}
