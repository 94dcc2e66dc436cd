//! The webhook notifier over https, against a receiver on a loopback port whose certificate
//! (for `localhost`) a CA made by the test signed: delivered when that CA is given to DMF,
//! refused without it (unknown CA) and under another host name, each refusal fatal and said.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use dmf_core::{ErrorKind, Notifier, Orchestrator, RunRequest, RunSummary, WebhookNotifier, WebhookPayload};
use dmf_testkit::MemoryTable;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// A CA (its certificate written to a PEM file) and a server certificate for `localhost`.
struct TestPki {
    ca_file: PathBuf,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
}

fn test_pki(label: &str) -> TestPki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&server_key, &ca).unwrap();
    let ca_file = std::env::temp_dir().join(format!("dmf-webhook-ca-{label}-{}.pem", std::process::id()));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    TestPki {
        ca_file,
        server_chain: vec![server.der().clone()],
        server_key: PrivateKeyDer::try_from(server_key.serialize_der()).unwrap(),
    }
}

/// An https receiver on 127.0.0.1: each request's body goes to the channel, then it answers
/// 200. A failed handshake sends nothing.
async fn https_receiver(pki: &TestPki) -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.server_chain.clone(), pki.server_key.clone_key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (bodies, received) = mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let Ok(mut stream) = acceptor.accept(socket).await else { continue };
            let mut request = Vec::new();
            let mut buffer = [0_u8; 4096];
            let head_end = loop {
                let n = stream.read(&mut buffer).await.unwrap();
                assert!(n > 0, "the request ended early");
                request.extend_from_slice(&buffer[..n]);
                if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
            };
            let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map(|value| value.trim().parse().unwrap())
                .expect("a content-length");
            while request.len() < head_end + length {
                let n = stream.read(&mut buffer).await.unwrap();
                request.extend_from_slice(&buffer[..n]);
            }
            bodies.send(request[head_end..head_end + length].to_vec()).await.unwrap();
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await.unwrap();
            stream.shutdown().await.unwrap();
        }
    });
    (addr, received)
}

async fn summary() -> RunSummary {
    let orchestrator = Orchestrator::builder(store())
        .migration(pipeline("customers", source(4), plain(), MemoryTable::new("target")))
        .engine(config(2))
        .build()
        .unwrap();
    orchestrator.run(RunRequest::all()).await.unwrap()
}

#[tokio::test]
async fn a_run_summary_is_posted_over_https_to_a_server_whose_ca_was_given() {
    let pki = test_pki("given");
    let (addr, mut received) = https_receiver(&pki).await;
    let summary = summary().await;
    let webhook = WebhookNotifier::builder(format!("https://localhost:{}/hook", addr.port()))
        .ca_file(&pki.ca_file)
        .build()
        .unwrap()
        .retries(0);
    webhook.notify(&summary).await.unwrap();
    let body = received.recv().await.expect("the receiver got the request");
    let payload: WebhookPayload = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload, WebhookPayload::from(&summary));
    let _ = std::fs::remove_file(&pki.ca_file);
}

#[tokio::test]
async fn without_the_ca_the_certificate_is_refused_as_unknown_and_not_retried() {
    let pki = test_pki("missing");
    let (addr, mut received) = https_receiver(&pki).await;
    // The platform's roots do not include the test CA.
    let webhook = WebhookNotifier::new(format!("https://localhost:{}/hook", addr.port())).unwrap().retries(3);
    let error = webhook.notify(&summary().await).await.unwrap_err();
    let text = error.to_string();
    assert_eq!(error.kind(), ErrorKind::Fatal, "{text}");
    assert!(
        text.contains(&format!(
            "webhook https://localhost:{}/hook: its TLS certificate was refused: unknown CA",
            addr.port()
        )),
        "{text}"
    );
    assert!(received.try_recv().is_err(), "nothing was delivered");
    let _ = std::fs::remove_file(&pki.ca_file);
}

#[tokio::test]
async fn a_certificate_for_another_host_name_is_refused_even_with_its_ca() {
    let pki = test_pki("wrong-name");
    let (addr, _received) = https_receiver(&pki).await;
    let webhook = WebhookNotifier::builder(format!("https://127.0.0.1:{}/hook", addr.port()))
        .ca_file(&pki.ca_file)
        .build()
        .unwrap()
        .retries(0);
    let text = webhook.notify(&summary().await).await.unwrap_err().to_string();
    assert!(text.contains("its TLS certificate was refused: wrong host name"), "{text}");
    let _ = std::fs::remove_file(&pki.ca_file);
}
