//! The command line keeps the names, shapes and defaults scripts rely on
//! (benches/compare.sh, the docs).

use std::time::Duration;

use clap::{CommandFactory, Parser};

use super::Cli;
use crate::config::{Config, Mode};

fn parse(line: &str) -> Result<Config, String> {
    let args = std::iter::once("wavecore-load").chain(line.split_whitespace());
    Cli::try_parse_from(args)
        .map_err(|e| e.to_string())?
        .into_config()
}

#[test]
fn the_command_is_well_formed() {
    Cli::command().debug_assert();
}

#[test]
fn defaults_are_the_ones_documented() {
    let c = parse("echo").unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.host, "127.0.0.1:9001");
    assert_eq!(c.path, "/");
    assert_eq!((c.connections, c.in_flight, c.size), (1, 1, 32));
    assert_eq!(c.duration, Duration::from_secs(10));
    assert_eq!(c.warmup, Duration::from_secs(1));
    assert_eq!((c.threads, c.publishers, c.window), (1, 1, 32));
    assert_eq!(c.rate, 0.0);
    assert!(!c.binary && !c.raw && !c.json && !c.progress);
    assert_eq!(c.server_pid, None);
}

#[test]
fn the_path_depends_on_the_mode() {
    assert_eq!(parse("broadcast").unwrap().path, "/broadcast");
    assert_eq!(parse("connect").unwrap().path, "/");
    assert_eq!(parse("broadcast --path /room").unwrap().path, "/room");
}

#[test]
fn every_long_option_keeps_its_name() {
    let c = parse(
        "broadcast 127.0.0.1:9100 --connections 100 --in-flight 4 --size 64 --binary \
         --duration 2.5 --warmup 0 --threads 3 --publishers 2 --rate 50.5 --window 8 \
         --path /p --server-pid 42 --json --progress",
    )
    .unwrap();
    assert_eq!(c.mode, Mode::Broadcast);
    assert_eq!(c.addr.port(), 9100);
    assert_eq!(c.host, "127.0.0.1:9100");
    assert_eq!((c.connections, c.in_flight, c.size), (100, 4, 64));
    assert_eq!(c.duration, Duration::from_millis(2500));
    assert_eq!(c.warmup, Duration::ZERO);
    assert_eq!((c.threads, c.publishers, c.window), (3, 2, 8));
    assert_eq!(c.rate, 50.5);
    assert_eq!(c.path, "/p");
    assert_eq!(c.server_pid, Some(42));
    assert!(c.binary && c.json && c.progress && !c.raw);
    assert!(parse("echo --raw").unwrap().raw);
}

#[test]
fn short_options_and_equals_signs() {
    let c = parse("echo 127.0.0.1:9100 -c 7 -p 3 -s 100 -d 0.5 -t 2 --warmup=0.25").unwrap();
    assert_eq!(
        (c.connections, c.in_flight, c.size, c.threads),
        (7, 3, 100, 2)
    );
    assert_eq!(c.duration, Duration::from_millis(500));
    assert_eq!(c.warmup, Duration::from_millis(250));
    assert_eq!(parse("echo --connections=5").unwrap().connections, 5);
}

#[test]
fn the_address_may_follow_options() {
    // benches/compare.sh puts MODE and options first, then ADDR, then more options.
    let c = parse("echo -c 1 -p 1 -s 32 --raw 127.0.0.1:9400 -d 3 --warmup 1 --json").unwrap();
    assert_eq!(c.addr.port(), 9400);
    assert!(c.raw && c.json);
    let c = parse("connect -c 10000 127.0.0.1:9401 -d 2 --warmup 0").unwrap();
    assert_eq!(
        (c.mode, c.connections, c.addr.port()),
        (Mode::Connect, 10000, 9401)
    );
}

#[test]
fn rejects_bad_lines() {
    for line in [
        "",
        "flood",
        "echo -s 8",
        "broadcast -s 24",
        "echo --bogus",
        "echo -c",
        "echo -c many",
        "echo -d -1",
        "echo -t 0",
        "broadcast --window 0",
        "broadcast --raw --publishers 2",
        "echo 127.0.0.1:9001 extra",
        "echo not-an-address",
    ] {
        assert!(parse(line).is_err(), "{line:?} was accepted");
    }
}

#[test]
fn help_documents_every_mode_and_unit() {
    let help = Cli::command().render_long_help().to_string();
    for needle in [
        "echo",
        "broadcast",
        "connect",
        "bytes",
        "seconds",
        "msgs/s",
        "microseconds",
        "[default: 127.0.0.1:9001]",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}");
    }
    for arg in Cli::command().get_arguments() {
        let name = arg.get_id().as_str();
        assert!(
            arg.get_help().is_some() || name == "help" || name == "version",
            "{name} has no help"
        );
    }
}

#[test]
fn publish_to_sends_the_publishers_to_another_server() {
    let c = parse("broadcast 127.0.0.1:9001 --publish-to 127.0.0.1:9002").unwrap();
    let target = c.publish_to.as_ref().expect("a target");
    assert_eq!(
        (target.addr.port(), target.host.as_str()),
        (9002, "127.0.0.1:9002")
    );
    assert_eq!(c.publisher_target().0.port(), 9002);
    assert_eq!(
        parse("broadcast").unwrap().publisher_target().0.port(),
        9001
    );
    assert!(parse("echo --publish-to 127.0.0.1:9002").is_err());
    assert!(parse("broadcast --raw --publish-to 127.0.0.1:9002").is_err());
}
