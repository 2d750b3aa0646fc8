//! The PROXY protocol reader: whole and cut into reads, the answer is the same.

use crate::protocol::proxy::{ProxyReader, parse};

use super::Input;

/// Parses the stream as one read and through a [`ProxyReader`] in the input's reads:
/// both must agree (the same header ending at the same byte, or both an error), and
/// a header never claims more bytes than it was given.
pub fn proxy_header(data: &[u8]) {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let whole = parse(input.stream);
    if let Ok(Some((_, used))) = &whole {
        assert!(*used <= input.stream.len());
    }
    let mut reader = ProxyReader::default();
    let mut offset = 0;
    let mut cut = Ok(None);
    for read in input.reads() {
        match reader.push(read) {
            Ok(None) => offset += read.len(),
            Ok(Some((header, used))) => {
                assert!(used <= read.len(), "a header claims bytes it was not given");
                cut = Ok(Some((header, offset + used)));
                break;
            }
            Err(e) => {
                cut = Err(e);
                break;
            }
        }
    }
    match (&whole, &cut) {
        (Ok(Some(a)), Ok(Some(b))) => assert_eq!(a, b, "whole and cut headers differ"),
        (Err(_), Err(_)) | (Ok(None), Ok(None)) => {}
        // A reader bounded at MAX_V2_LEN may refuse (too long) what the whole parse
        // still waits on.
        (Ok(None), Err(_)) => {}
        _ => panic!("whole {whole:?} and cut {cut:?} disagree"),
    }
}
