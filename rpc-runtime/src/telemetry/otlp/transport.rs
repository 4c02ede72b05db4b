//! How an OTLP batch travels: `opentelemetry-otlp`'s own HTTP client,
//! reqwest's blocking one, over http or https (rustls on ring, the crypto
//! this crate already builds for `rediss://`), configured from the
//! standard `OTEL_EXPORTER_OTLP_*` variables.
//!
//! Why the blocking client: the SDK's batch processor exports from a
//! thread of its own, outside any Tokio runtime, and the last flush comes
//! at shutdown, often after the application's runtime has stopped. An
//! async client tied to the application's runtime would then hang or lose
//! the last spans, and would run the export on the application's threads.
//! The blocking client keeps one small runtime on a thread of its own, so
//! no export ever runs on the application's runtime.
//!
//! Server certificates are checked against the system's roots, plus the
//! PEM file named by `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE` (or
//! `OTEL_EXPORTER_OTLP_CERTIFICATE`): a private CA's collector works
//! without touching the system's store. `..._CLIENT_CERTIFICATE` and
//! `..._CLIENT_KEY` give a client certificate for mutual TLS.

use std::time::Duration;

use super::OtlpError;

/// The per-export timeout when the environment sets none: the
/// specification's default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// `OTEL_EXPORTER_OTLP_TRACES_{name}`, else `OTEL_EXPORTER_OTLP_{name}`:
/// the traces signal's own setting wins over the one for every signal.
fn setting(env: &impl Fn(&str) -> Option<String>, name: &str) -> Option<(String, String)> {
    [
        format!("OTEL_EXPORTER_OTLP_TRACES_{name}"),
        format!("OTEL_EXPORTER_OTLP_{name}"),
    ]
    .into_iter()
    .find_map(|var| {
        env(&var)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (var, v.trim().to_owned()))
    })
}

/// The client every export is posted with, configured from `env`.
pub(super) fn client(
    env: impl Fn(&str) -> Option<String>,
) -> Result<reqwest::blocking::Client, OtlpError> {
    let timeout = match setting(&env, "TIMEOUT") {
        None => DEFAULT_TIMEOUT,
        Some((var, v)) => Duration::from_millis(v.parse().map_err(|_| OtlpError::Setting {
            var,
            reason: format!("{v:?} is not a whole number of milliseconds"),
        })?),
    };
    let read = |(var, path): (String, String)| {
        std::fs::read(&path).map_err(|e| OtlpError::Setting {
            reason: format!("cannot read {path}: {e}"),
            var,
        })
    };
    let roots = match setting(&env, "CERTIFICATE") {
        None => Vec::new(),
        Some((var, path)) => {
            let pem = read((var.clone(), path.clone()))?;
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| OtlpError::Setting {
                var,
                reason: format!("{path} holds no PEM certificate: {e}"),
            })?
        }
    };
    let identity = match (
        setting(&env, "CLIENT_CERTIFICATE"),
        setting(&env, "CLIENT_KEY"),
    ) {
        (Some(cert), Some(key)) => {
            let var = format!("{} and {}", cert.0, key.0);
            let mut pem = read(cert)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            Some(
                reqwest::Identity::from_pem(&pem).map_err(|e| OtlpError::Setting {
                    var,
                    reason: format!("not a PEM certificate and key: {e}"),
                })?,
            )
        }
        (None, None) => None,
        (Some((var, _)), None) | (None, Some((var, _))) => {
            return Err(OtlpError::Setting {
                var,
                reason: "a client certificate needs both CLIENT_CERTIFICATE and CLIENT_KEY"
                    .to_owned(),
            })
        }
    };
    // rustls needs its crypto chosen once per process; `rediss://` may have
    // done so already, with the same provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .tls_certs_merge(roots);
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    // The blocking client starts a runtime of its own, which cannot be
    // done from inside the application's: built on a thread of its own.
    std::thread::scope(|s| {
        s.spawn(move || builder.build())
            .join()
            .unwrap_or_else(|_| panic!("building the OTLP HTTP client panicked"))
    })
    .map_err(|e| OtlpError::Setting {
        var: "OTEL_EXPORTER_OTLP_*".to_owned(),
        reason: format!("cannot build the HTTP client: {e}"),
    })
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
    fn a_bad_setting_is_an_error_that_names_its_variable() {
        let e = client(env(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")])).unwrap_err();
        assert!(e.to_string().contains("OTEL_EXPORTER_OTLP_TIMEOUT"), "{e}");
        let e = client(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            "/nonexistent/ca.pem",
        )]))
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let e = client(env(&[("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/k.pem")])).unwrap_err();
        assert!(e.to_string().contains("CLIENT_CERTIFICATE"), "{e}");
        assert!(client(env(&[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2500")])).is_ok());
    }
}
