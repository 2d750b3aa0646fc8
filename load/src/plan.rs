//! Which connections each thread opens, and the part each plays.

use crate::config::{Config, Mode};
use crate::role::Role;
use crate::slots::Spec;

/// The connections of `cfg`, dealt round-robin over its threads: first the
/// `connections` (echo, subscriber or idle), then the publishers.
pub fn per_thread(cfg: &Config) -> Vec<Vec<Spec>> {
    let publishers = cfg.publishing();
    let mut threads: Vec<Vec<Spec>> = (0..cfg.threads).map(|_| Vec::new()).collect();
    for index in 0..cfg.connections {
        let role = role(cfg.mode, index, publishers);
        threads[index % cfg.threads].push(Spec { index, role });
    }
    for p in 0..publishers {
        let role = Role::Publisher {
            index: p as u32,
            seq: 0,
            due: None,
        };
        let index = cfg.connections + p;
        threads[p % cfg.threads].push(Spec { index, role });
    }
    threads
}

/// The role of connection `index` (not a publisher) in `mode`.
fn role(mode: Mode, index: usize, publishers: usize) -> Role {
    match mode {
        Mode::Echo => Role::Echo {
            id: index as u32,
            next_send: 0,
            next_recv: 0,
            sent_at: Default::default(),
        },
        Mode::Broadcast => Role::Subscriber {
            next: vec![0; publishers],
        },
        // A soak is made of runs of the other modes (see `soak.rs`).
        Mode::Connect | Mode::Soak => Role::Idle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publishers(specs: &[Spec]) -> usize {
        specs
            .iter()
            .filter(|s| matches!(s.role, Role::Publisher { .. }))
            .count()
    }

    #[test]
    fn connections_and_publishers_are_dealt_round_robin() {
        let cfg = Config {
            mode: Mode::Broadcast,
            connections: 5,
            publishers: 3,
            threads: 2,
            ..Config::default()
        };
        let threads = per_thread(&cfg);
        let indices: Vec<Vec<usize>> = threads
            .iter()
            .map(|t| t.iter().map(|s| s.index).collect())
            .collect();
        assert_eq!(indices, [vec![0, 2, 4, 5, 7], vec![1, 3, 6]]);
        assert_eq!((publishers(&threads[0]), publishers(&threads[1])), (2, 1));
        assert!(matches!(&threads[1][0].role, Role::Subscriber { next } if next.len() == 3));
    }

    #[test]
    fn echo_and_connect_have_no_publishers() {
        for mode in [Mode::Echo, Mode::Connect] {
            let cfg = Config {
                mode,
                connections: 4,
                publishers: 2,
                ..Config::default()
            };
            let threads = per_thread(&cfg);
            assert_eq!(threads.len(), 1);
            assert_eq!(threads[0].len(), 4);
            assert_eq!(publishers(&threads[0]), 0);
        }
    }
}
