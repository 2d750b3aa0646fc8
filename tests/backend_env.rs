//! `WAVECORE_BACKEND` set to a name that is no backend makes `start` fail, naming the
//! value, instead of running on epoll as if it were unset; a backend chosen in code
//! overrides it. A test binary of its own: it sets the variable for the whole process.

use std::io::ErrorKind;

use wavecore::{Backend, Conn, Handler, Message, Server};

struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.send(message);
    }
}

#[test]
fn an_unknown_backend_in_the_environment_fails_the_start() {
    // SAFETY: the only test of this binary, so no other thread reads the environment.
    unsafe { std::env::set_var("WAVECORE_BACKEND", "kqueue") };
    let builder = || Server::builder().bind("127.0.0.1:0").workers(1);

    let Err(error) = builder().start(wavecore::accept_all(|| Echo)) else {
        panic!("WAVECORE_BACKEND=kqueue must fail the start");
    };
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert!(
        error.to_string().contains("WAVECORE_BACKEND=kqueue"),
        "{error}"
    );

    let server = builder()
        .backend(Backend::Epoll)
        .start(wavecore::accept_all(|| Echo))
        .expect("a backend chosen in code overrides the environment");
    assert_eq!(server.handle().backend(), Backend::Epoll);
    server.handle().shutdown();
    server.join().expect("the server stops");
}
