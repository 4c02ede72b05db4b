//! Broker URLs: which nodes, whether a Cluster, which TLS material, and
//! how to print a URL without its password.

use crate::error::Error;

/// A parsed broker URL: where to connect, whether it is a Cluster, and the
/// TLS material it names.
pub(crate) struct Target {
    /// `redis://` / `rediss://` URLs, one per node (one for a single Redis).
    pub(crate) nodes: Vec<String>,
    pub(crate) cluster: bool,
    pub(crate) tls: Option<redis::TlsCertificates>,
    /// `?enqueue=auto|stream|intake`: how a client adds jobs, when the URL
    /// says (a restricted client user says `intake`, and so never has an
    /// `XADD` refused in the ACL log).
    pub(crate) enqueue: Option<crate::backend::Enqueue>,
}

pub(crate) fn parse_target(url: &str) -> Result<Target, Error> {
    let invalid = |reason: String| Error::InvalidUrl {
        url: redact(url),
        reason,
    };
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // Our own query parameters name files; the redis crate does not know them.
    let mut ca = None;
    let mut client_cert = None;
    let mut client_key = None;
    let mut enqueue = None;
    let mut passed_on = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = url::form_urlencoded::parse(format!("v={v}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        match k {
            "ca" => ca = Some(v),
            "client_cert" => client_cert = Some(v),
            "client_key" => client_key = Some(v),
            "enqueue" => {
                enqueue = Some(match v.as_str() {
                    "auto" => crate::backend::Enqueue::Auto,
                    "stream" => crate::backend::Enqueue::Stream,
                    "intake" => crate::backend::Enqueue::Intake,
                    other => {
                        return Err(invalid(format!(
                            "enqueue={other}: expected auto, stream or intake"
                        )))
                    }
                })
            }
            _ => passed_on.push(pair.to_owned()),
        }
    }
    let read = |what: &str, path: &str| {
        std::fs::read(path).map_err(|e| invalid(format!("cannot read the {what} `{path}`: {e}")))
    };
    let tls = if ca.is_some() || client_cert.is_some() {
        let client_tls = match (&client_cert, &client_key) {
            (Some(c), Some(k)) => Some(redis::ClientTlsConfig {
                client_cert: read("client certificate", c)?,
                client_key: read("client key", k)?,
            }),
            (None, None) => None,
            _ => return Err(invalid("client_cert and client_key go together".to_owned())),
        };
        Some(redis::TlsCertificates {
            client_tls,
            root_cert: ca
                .as_deref()
                .map(|p| read("CA certificate", p))
                .transpose()?,
        })
    } else {
        None
    };
    let rest_query = if passed_on.is_empty() {
        String::new()
    } else {
        format!("?{}", passed_on.join("&"))
    };
    let cluster_scheme = if let Some(rest) = base.strip_prefix("redis+cluster://") {
        Some(("redis", rest))
    } else {
        base.strip_prefix("rediss+cluster://")
            .map(|rest| ("rediss", rest))
    };
    let Some((scheme, rest)) = cluster_scheme else {
        if tls.is_some() && !base.starts_with("rediss://") {
            return Err(invalid(
                "ca/client_cert only make sense with rediss:// (TLS)".to_owned(),
            ));
        }
        return Ok(Target {
            nodes: vec![format!("{base}{rest_query}")],
            cluster: false,
            tls,
            enqueue,
        });
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, p),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|host| match userinfo {
            Some(u) => format!("{scheme}://{u}@{host}/{path}{rest_query}"),
            None => format!("{scheme}://{host}/{path}{rest_query}"),
        })
        .collect();
    if nodes.is_empty() {
        return Err(invalid(
            "a cluster URL lists its seed nodes: redis+cluster://host:port,host:port".to_owned(),
        ));
    }
    Ok(Target {
        nodes,
        cluster: true,
        tls,
        enqueue,
    })
}

/// The URL without its password, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    // Cluster URLs list several hosts, which `url` cannot parse; redact the
    // user info by hand.
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            let userinfo = &rest[..at];
            let user = userinfo.split_once(':').map(|(u, _)| u);
            if let Some(user) = user {
                return format!("{scheme}://{user}:***@{}", &rest[at + 1..]);
            }
        }
    }
    url.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_become_seed_nodes() {
        let t = parse_target("redis+cluster://u:p@127.0.0.1:7000,127.0.0.1:7001/").unwrap();
        assert!(t.cluster);
        assert_eq!(
            t.nodes,
            vec!["redis://u:p@127.0.0.1:7000/", "redis://u:p@127.0.0.1:7001/"]
        );
        let t = parse_target("rediss+cluster://h:1").unwrap();
        assert_eq!(t.nodes, vec!["rediss://h:1/"]);
        assert!(parse_target("redis+cluster:///").is_err());
    }

    #[test]
    fn tls_query_parameters_are_ours() {
        assert!(matches!(
            parse_target("rediss://h:1/?ca=/does/not/exist"),
            Err(Error::InvalidUrl { .. })
        ));
        assert!(parse_target("redis://h:1/?ca=/x").is_err());
        let t = parse_target("redis://h:1/0?protocol=resp2").unwrap();
        assert_eq!(t.nodes, vec!["redis://h:1/0?protocol=resp2"]);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://u:secret@h:1/"), "redis://u:***@h:1/");
        assert_eq!(
            redact("redis+cluster://u:s@a:1,b:2/"),
            "redis+cluster://u:***@a:1,b:2/"
        );
        assert_eq!(redact("redis://h:1/"), "redis://h:1/");
    }
}
