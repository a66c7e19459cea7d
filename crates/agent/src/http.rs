//! Who may read the agent's /status and /metrics. /status names hosts,
//! repositories, paths and errors. Without a token, the server is on
//! loopback (the config refuses any other address without one) and answers
//! only requests whose Host is an IP address or `localhost`: a web page
//! that rebinds its own DNS name to 127.0.0.1 sends its name as the Host, so
//! it cannot read them. With `listen_token_file`, every request to them
//! must carry `Authorization: Bearer TOKEN`. /healthz says only "ok" and
//! stays open to health checkers.

/// Why a request is refused: status code, body and whether to ask for a token.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub message: String,
    pub ask_token: bool,
}

/// May a request for `path` with these headers be answered?
pub fn admit(
    path: &str,
    host: Option<&str>,
    authorization: Option<&str>,
    token: Option<&str>,
) -> Result<(), Refusal> {
    if path == "/healthz" {
        return Ok(());
    }
    match token {
        Some(token) => {
            let sent = authorization
                .and_then(|a| a.strip_prefix("Bearer "))
                .map(str::trim);
            if sent.is_some_and(|s| same(s.as_bytes(), token.as_bytes())) {
                Ok(())
            } else {
                Err(Refusal {
                    code: 401,
                    message: "unauthorized: send 'Authorization: Bearer' and the first line of the agent's listen_token_file\n".into(),
                    ask_token: true,
                })
            }
        }
        None if host.is_some_and(is_local_host) => Ok(()),
        None => Err(Refusal {
            code: 403,
            message: format!(
                "forbidden: Host {:?} is not an IP address or localhost; ask for http://127.0.0.1:PORT{path}, or set listen_token_file to read it by name\n",
                host.unwrap_or("")
            ),
            ask_token: false,
        }),
    }
}

/// True if the Host header names an IP address or localhost (with or
/// without a port).
fn is_local_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [::1]:9478
        Some(rest) => match rest.split_once(']') {
            Some((ip, _)) => ip,
            None => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        },
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_token_only_requests_by_address_are_answered() {
        for host in [
            "127.0.0.1:9478",
            "127.0.0.1",
            "localhost:9478",
            "LOCALHOST",
            "[::1]:9478",
            "10.1.2.3:9478",
        ] {
            assert_eq!(admit("/status", Some(host), None, None), Ok(()), "{host}");
        }
        // DNS rebinding: the attacker's name, pointed at 127.0.0.1.
        for host in [
            Some("evil.example:9478"),
            Some("localhost.evil.example"),
            Some("127.0.0.1.evil.example:9478"),
            Some("[::1"),
            None,
        ] {
            let r = admit("/metrics", host, None, None).unwrap_err();
            assert_eq!(r.code, 403, "{host:?}");
            assert!(r.message.starts_with("forbidden: Host"), "{}", r.message);
        }
        assert_eq!(admit("/healthz", Some("evil.example"), None, None), Ok(()));
    }

    #[test]
    fn with_a_token_every_request_needs_it() {
        let t = Some("s3cret-token");
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("s3cret-token"),
            Some("Bearer s3cret-toke"),
        ] {
            let r = admit("/status", Some("127.0.0.1:9478"), auth, t).unwrap_err();
            assert_eq!((r.code, r.ask_token), (401, true), "{auth:?}");
        }
        for host in ["erp01.example.net:9478", "127.0.0.1"] {
            assert_eq!(
                admit("/metrics", Some(host), Some("Bearer s3cret-token"), t),
                Ok(())
            );
        }
        assert_eq!(admit("/healthz", Some("x"), None, t), Ok(()));
    }
}
