//! The command line the broadcast and chat examples share: `[ADDR] [--redis URL]`.

/// The address to bind (default `127.0.0.1:9001`) and the Redis URL of `--redis`, if
/// given; `InvalidInput` when `--redis` has no URL after it.
pub fn addr_and_redis() -> std::io::Result<(String, Option<String>)> {
    let (mut addr, mut redis) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--redis" {
            let url = args.next().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "--redis needs a URL")
            })?;
            redis = Some(url);
        } else {
            addr = Some(arg);
        }
    }
    Ok((addr.unwrap_or_else(|| "127.0.0.1:9001".into()), redis))
}
