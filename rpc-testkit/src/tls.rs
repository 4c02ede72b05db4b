//! A throwaway certificate authority, server and client certificate, made
//! with the `openssl` command for one TLS test server.
//!
//! Generating them per server (rather than checking fixed ones into the
//! repository) means nothing expires, no private key is ever committed, and
//! a test that trusts the wrong CA really fails. The certificates carry what
//! strict verifiers (rustls/webpki) insist on: a v3 CA with `CA:TRUE` and
//! `keyCertSign`, and a leaf with `subjectAltName` covering both
//! `localhost` and `127.0.0.1`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The files behind a TLS [`RedisServer`](crate::RedisServer).
///
/// Clients trust [`ca_cert`](Self::ca_cert); the client certificate is there
/// for tests of mutual TLS (`tls_auth_clients(true)`).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA certificate (PEM) that signed both certificates below.
    pub ca_cert: PathBuf,
    /// The server's certificate (PEM), valid for `localhost` and `127.0.0.1`.
    pub server_cert: PathBuf,
    /// The server's private key (PEM).
    pub server_key: PathBuf,
    /// A client certificate (PEM) signed by the same CA.
    pub client_cert: PathBuf,
    /// The client certificate's private key (PEM).
    pub client_key: PathBuf,
}

/// Every key is a fresh P-256 key: generated in milliseconds (RSA takes
/// hundreds) and accepted by OpenSSL, rustls and Redis alike.
const NEW_KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = rpc-testkit

[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer

[v3_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
";

impl TlsFiles {
    /// Generates a CA and a server and client certificate into `dir`, for
    /// any TLS test server (a Redis, an OTLP collector).
    pub fn generate(dir: &Path) -> io::Result<TlsFiles> {
        fs::create_dir_all(dir)?;
        let config = dir.join("openssl.cnf");
        fs::write(&config, OPENSSL_CONFIG)?;
        let files = TlsFiles {
            ca_cert: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
        };
        let ca_key = dir.join("ca.key");

        // Self-signed CA.
        run(openssl()
            .args(["req", "-x509", "-nodes", "-days", "7"])
            .args(NEW_KEY)
            .args([
                "-subj",
                "/CN=rpc-testkit throwaway CA",
                "-extensions",
                "v3_ca",
            ])
            .arg("-config")
            .arg(&config)
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&files.ca_cert))?;
        issue(
            dir,
            &config,
            &files.ca_cert,
            &ca_key,
            "server",
            "/CN=localhost",
            "v3_server",
            &files.server_cert,
            &files.server_key,
        )?;
        issue(
            dir,
            &config,
            &files.ca_cert,
            &ca_key,
            "client",
            "/CN=rpc-testkit client",
            "v3_client",
            &files.client_cert,
            &files.client_key,
        )?;
        Ok(files)
    }
}

/// Makes a key and a certificate for it signed by the CA.
#[allow(clippy::too_many_arguments)]
fn issue(
    dir: &Path,
    config: &Path,
    ca_cert: &Path,
    ca_key: &Path,
    name: &str,
    subject: &str,
    extensions: &str,
    cert: &Path,
    key: &Path,
) -> io::Result<()> {
    let csr = dir.join(format!("{name}.csr"));
    run(openssl()
        .args(["req", "-new", "-nodes", "-subj", subject])
        .args(NEW_KEY)
        .arg("-config")
        .arg(config)
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(&csr))?;
    run(openssl()
        .args([
            "x509",
            "-req",
            "-days",
            "7",
            "-sha256",
            "-set_serial",
            &serial(),
        ])
        .args(["-extensions", extensions])
        .arg("-extfile")
        .arg(config)
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(ca_cert)
        .arg("-CAkey")
        .arg(ca_key)
        .arg("-out")
        .arg(cert))
}

/// A serial number unlikely to repeat across servers started by one test run.
fn serial() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}", (nanos as u64) ^ (u64::from(std::process::id()) << 40))
}

fn openssl() -> Command {
    let mut command = Command::new("openssl");
    command.stdin(Stdio::null());
    command
}

fn run(command: &mut Command) -> io::Result<()> {
    let output = command
        .output()
        .map_err(|err| crate::explain_spawn_error("openssl", err))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}
