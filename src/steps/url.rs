//! The schemes Forge's HTTP client speaks. HTTPS needs the `tls` cargo feature (off by default:
//! its TLS library compiles C for the target); without it an `https://` URL is refused up front
//! with what to do, instead of failing deep in a request.

/// `Ok` when this build can talk to `url`; otherwise what to do, for the user.
pub fn check_scheme(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    match scheme.to_ascii_lowercase().as_str() {
        "http" => Ok(()),
        "https" if cfg!(feature = "tls") => Ok(()),
        "https" => Err(format!(
            "`{url}` is HTTPS, and this forge was built without TLS\nhint: rebuild with `cargo build --release --features tls`, or use the server's plain `http://` URL"
        )),
        _ => Err(format!(
            "`{url}` is not an HTTP URL\nhint: for example `http://127.0.0.1:8000`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::check_scheme;

    #[test]
    fn http_passes_https_needs_the_tls_feature_and_others_are_refused() {
        assert_eq!(check_scheme("http://127.0.0.1:8000/v1"), Ok(()));
        assert_eq!(check_scheme("HTTP://localhost"), Ok(()));
        let https = check_scheme("https://api.example.com");
        if cfg!(feature = "tls") {
            assert_eq!(https, Ok(()));
        } else {
            insta::assert_snapshot!(https.unwrap_err(), @r"
            `https://api.example.com` is HTTPS, and this forge was built without TLS
            hint: rebuild with `cargo build --release --features tls`, or use the server's plain `http://` URL
            ");
        }
        insta::assert_snapshot!(check_scheme("127.0.0.1:8000").unwrap_err(), @r"
        `127.0.0.1:8000` is not an HTTP URL
        hint: for example `http://127.0.0.1:8000`
        ");
    }
}
