//! Where the OTLP exporter sends: the endpoint given in code or by the
//! standard environment variables, resolved as the OpenTelemetry
//! specification says (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as is,
//! `OTEL_EXPORTER_OTLP_ENDPOINT` as a base with `/v1/traces` appended), and
//! checked at start: a wrong endpoint is an error the operator sees at once,
//! not spans lost without a word every few seconds.
//!
//! The resolution is done here rather than left to `opentelemetry-otlp` so
//! that the URL can be checked (http or https, with a host) and told back
//! to the application ([`super::OtlpGuard::endpoint`]); the exporter is then
//! given the resolved URL, which it uses as it is.

use super::OtlpError;

/// The path of the traces signal under an OTLP/HTTP base URL.
const TRACES_PATH: &str = "v1/traces";
/// The specification's default base URL for OTLP over HTTP.
const DEFAULT_BASE: &str = "http://localhost:4318";
/// The full URL of the traces signal; used as is.
pub(super) const TRACES_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// The base URL of every signal; `/v1/traces` is appended.
pub(super) const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Resolves the URL spans are posted to, in the specification's order:
/// `base` given in code (a base URL, like `OTEL_EXPORTER_OTLP_ENDPOINT`),
/// then `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL), then
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (a base), then `http://localhost:4318`.
/// Empty values count as unset. `env` reads a variable (the process's
/// environment, or a table in tests).
pub(super) fn resolve(
    base: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<String, OtlpError> {
    let set = |v: &str| !v.trim().is_empty();
    let (url, from) = if let Some(base) = base.filter(|b| set(b)) {
        (traces_url(base), "the code")
    } else if let Some(full) = env(TRACES_ENDPOINT_VAR).filter(|v| set(v)) {
        (full.trim().to_owned(), TRACES_ENDPOINT_VAR)
    } else if let Some(base) = env(ENDPOINT_VAR).filter(|v| set(v)) {
        (traces_url(&base), ENDPOINT_VAR)
    } else {
        (traces_url(DEFAULT_BASE), "the default")
    };
    check(&url, from)?;
    Ok(url)
}

/// `base` with the traces path appended (one `/` between them).
fn traces_url(base: &str) -> String {
    format!("{}/{TRACES_PATH}", base.trim().trim_end_matches('/'))
}

/// An http or https URL with a host, or why not.
fn check(url: &str, from: &'static str) -> Result<(), OtlpError> {
    let bad = |reason: &str| OtlpError::Endpoint {
        url: url.to_owned(),
        from,
        reason: reason.to_owned(),
    };
    let uri: hyper::Uri = url.parse().map_err(|e| bad(&format!("not a URL ({e})")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad("not an http:// or https:// URL"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_endpoint_follows_the_specifications_order() {
        let both = [
            (TRACES_ENDPOINT_VAR, "http://traces:4318/custom"),
            (ENDPOINT_VAR, "http://base:4318/"),
        ];
        // The code's base wins, and gets the path like the base variable.
        assert_eq!(
            resolve(Some("http://code:4318"), env(&both)).unwrap(),
            "http://code:4318/v1/traces"
        );
        // The traces variable is the full URL, used as is.
        assert_eq!(
            resolve(None, env(&both)).unwrap(),
            "http://traces:4318/custom"
        );
        // The base variable gets the path, without a double slash.
        assert_eq!(
            resolve(None, env(&both[1..])).unwrap(),
            "http://base:4318/v1/traces"
        );
        // Nothing set (or set empty): the specification's default.
        assert_eq!(
            resolve(Some(""), env(&[(ENDPOINT_VAR, " ")])).unwrap(),
            "http://localhost:4318/v1/traces"
        );
    }

    #[test]
    fn an_endpoint_that_cannot_work_is_refused_at_start_and_says_where_it_came_from() {
        // https is spoken (rustls), as well as http.
        assert_eq!(
            resolve(None, env(&[(ENDPOINT_VAR, "https://collector:4318")])).unwrap(),
            "https://collector:4318/v1/traces"
        );
        let wrong = resolve(None, env(&[(ENDPOINT_VAR, "grpc://collector:4317")]));
        let message = wrong.unwrap_err().to_string();
        assert!(message.contains(ENDPOINT_VAR), "{message}");
        for bad in [
            "collector:4318",
            "grpc://collector:4317",
            "http://",
            "not a url",
        ] {
            assert!(resolve(Some(bad), env(&[])).is_err(), "{bad:?}");
        }
    }
}
