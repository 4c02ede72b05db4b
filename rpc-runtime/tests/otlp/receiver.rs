//! A minimal OTLP/HTTP receiver for the `otlp` test: what a collector does
//! with traces, and no more. It accepts `POST /v1/traces` with a protobuf
//! `ExportTraceServiceRequest`, decodes it with opentelemetry-proto's
//! prost types, and keeps every span with the name of the service that
//! sent it; it answers as a collector does (200, an empty
//! `ExportTraceServiceResponse`), so an exporter that gets it wrong fails
//! in the test.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use prost::Message;

/// One span as received, ids in lowercase hex (empty when absent).
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// `service.name` of the resource that sent it.
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    /// OTLP's `SpanKind` (2 server, 3 client, 4 producer, 5 consumer).
    pub kind: i32,
    /// The string-valued attributes.
    pub attributes: Vec<(String, String)>,
    /// Every attribute, with its OTLP type.
    pub typed: Vec<(String, any_value::Value)>,
    /// The span's status code (0 unset, 1 ok, 2 error).
    pub status: i32,
}

impl ReceivedSpan {
    /// The string attribute `key`, if sent.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The attribute `key` with its type, if sent.
    pub fn value(&self, key: &str) -> Option<&any_value::Value> {
        self.typed.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// What the receiver was sent.
#[derive(Debug, Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    /// A line per request that was not a well-formed traces export.
    refused: Vec<String>,
}

/// The receiver, serving on a free loopback port until dropped.
pub struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    serving: tokio::task::JoinHandle<()>,
    https: bool,
}

impl Receiver {
    /// Binds a free port on 127.0.0.1 and serves on the current runtime.
    pub async fn start() -> Receiver {
        Receiver::serve(None).await
    }

    /// [`start`](Self::start), serving https with `tls`'s server
    /// certificate (signed by its throwaway CA).
    pub async fn start_tls(tls: &rpc_testkit::TlsFiles) -> Receiver {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(&tls.server_cert)
            .expect("the server certificate")
            .collect::<Result<Vec<_>, _>>()
            .expect("PEM certificates");
        let key = PrivateKeyDer::from_pem_file(&tls.server_key).expect("the server key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("a server certificate");
        Receiver::serve(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let addr = listener.local_addr().expect("its address");
        let received = Arc::new(Mutex::new(Received::default()));
        let shared = received.clone();
        let https = tls.is_some();
        let serving = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let shared = shared.clone();
                        async move { Ok::<_, hyper::Error>(handle(request, &shared).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                        Some(tls) => {
                            // A handshake that fails (an untrusted CA) ends here.
                            if let Ok(stream) = tls.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                    }
                });
            }
        });
        Receiver {
            addr,
            received,
            serving,
            https,
        }
    }

    /// The base URL to give an exporter (`/v1/traces` is appended to it).
    pub fn endpoint(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.lock().unwrap().spans.clone()
    }

    /// The requests that were not well-formed traces exports, and why.
    pub fn refused(&self) -> Vec<String> {
        self.received.lock().unwrap().refused.clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// Answers one request: a traces export is decoded and kept, anything
/// else refused (and noted, for the test's failure message).
async fn handle(request: Request<Incoming>, received: &Mutex<Received>) -> Response<Full<Bytes>> {
    let what = format!("{} {}", request.method(), request.uri());
    let content_type = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if request.method() != Method::POST || request.uri().path() != "/v1/traces" {
        return refuse(
            received,
            StatusCode::NOT_FOUND,
            format!("{what}: not OTLP traces"),
        );
    }
    if content_type != "application/x-protobuf" {
        let why = format!("{what}: content type {content_type:?}, not protobuf");
        return refuse(received, StatusCode::UNSUPPORTED_MEDIA_TYPE, why);
    }
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return refuse(received, StatusCode::BAD_REQUEST, format!("{what}: {e}")),
    };
    let export = match ExportTraceServiceRequest::decode(body) {
        Ok(export) => export,
        Err(e) => return refuse(received, StatusCode::BAD_REQUEST, format!("{what}: {e}")),
    };
    let mut spans = Vec::new();
    for resource_spans in export.resource_spans {
        let resource = resource_spans.resource.unwrap_or_default();
        let service = strings(&resource.attributes)
            .into_iter()
            .find(|(k, _)| k == "service.name")
            .map(|(_, v)| v)
            .unwrap_or_default();
        for span in resource_spans
            .scope_spans
            .into_iter()
            .flat_map(|scope| scope.spans)
        {
            spans.push(ReceivedSpan {
                service: service.clone(),
                attributes: strings(&span.attributes),
                typed: span
                    .attributes
                    .iter()
                    .filter_map(|kv| Some((kv.key.clone(), kv.value.as_ref()?.value.clone()?)))
                    .collect(),
                status: span.status.as_ref().map_or(0, |s| s.code),
                name: span.name,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                kind: span.kind,
            });
        }
    }
    received.lock().unwrap().spans.extend(spans);
    let answer = ExportTraceServiceResponse::default().encode_to_vec();
    Response::builder()
        .header(hyper::header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(Bytes::from(answer)))
        .expect("a valid response")
}

fn refuse(received: &Mutex<Received>, status: StatusCode, why: String) -> Response<Full<Bytes>> {
    received.lock().unwrap().refused.push(why.clone());
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(why)))
        .expect("a valid response")
}

/// The string-valued attributes among `attributes`.
fn strings(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some((kv.key.clone(), s.clone())),
            _ => None,
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
