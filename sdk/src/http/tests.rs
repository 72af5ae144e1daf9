//! The client against small servers of our own on loopback: plain and TLS, each answering
//! every connection with one canned response.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

use medfabric_ca::{CertificateAuthority, LeafRequest, Name, Usage, Validity};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::*;

/// Reads one request head (and its body, by Content-Length); returns the head.
fn read_request(stream: &mut impl Read) -> String {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap_or(0) == 0 {
            break;
        }
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let length = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    let _ = stream.read_exact(&mut body);
    head + &String::from_utf8_lossy(&body)
}

/// A plain HTTP server answering `response` to each of `connections`; its address, and
/// the requests it saw.
fn plain_server(
    response: &'static [u8],
    connections: usize,
) -> (String, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let served = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..connections {
            let (mut stream, _) = listener.accept().expect("accept");
            seen.push(read_request(&mut stream));
            let _ = stream.write_all(response);
        }
        seen
    });
    (address, served)
}

struct Tls {
    ca: CertificateAuthority,
    address: String,
    served: std::thread::JoinHandle<usize>,
}

/// A TLS server whose certificate (from a fresh CA) names `name` only; it answers each of
/// `connections` (or counts a failed handshake).
fn tls_server(name: &str, connections: usize) -> Tls {
    let now = time::OffsetDateTime::now_utc();
    let ca = CertificateAuthority::new_root(
        &Name::fabric_style("tlsca.example", Some("example"), &[]),
        Validity::days_from(now - time::Duration::hours(1), 1),
    )
    .expect("tls ca");
    let issued = ca
        .issue(&LeafRequest {
            subject_alt_names: vec![name.to_owned()],
            usage: Usage::Tls,
            ..LeafRequest::enrollment(name, "client", Validity::days_from(now - time::Duration::hours(1), 1))
        })
        .expect("server cert");
    let chain = vec![CertificateDer::from(issued.certificate_der.clone())];
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem().as_bytes()).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let served = std::thread::spawn(move || {
        let mut answered = 0;
        for _ in 0..connections {
            let (tcp, _) = listener.accept().expect("accept");
            let connection = rustls::ServerConnection::new(config.clone()).expect("connection");
            let mut stream = rustls::StreamOwned::new(connection, tcp);
            let head = read_request(&mut stream);
            if head.is_empty() {
                continue;
            }
            answered += 1;
            let _ =
                stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecret");
            stream.conn.send_close_notify();
            let _ = stream.flush();
        }
        answered
    });
    Tls { ca, address, served }
}

fn https(tls: &Tls, server_name: Option<&str>) -> Endpoint {
    Endpoint {
        tls_ca_pem: Some(tls.ca.certificate_pem().as_bytes().to_vec()),
        server_name: server_name.map(str::to_owned),
        ..Endpoint::plain(&tls.address)
    }
}

#[test]
fn a_chunked_answer_is_read_whole_and_any_status_is_an_answer() {
    let (address, served) = plain_server(
        b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        1,
    );
    let answer = exchange(
        &Endpoint::plain(&address),
        "POST",
        "/api/v1/enroll",
        &[("Authorization", "Basic x")],
        b"{}",
    )
    .expect("exchange");
    assert_eq!((answer.status, answer.body.as_str()), (401, "hello world"));
    let seen = served.join().expect("server");
    assert!(seen[0].starts_with("POST /api/v1/enroll HTTP/1.1\r\n"), "{}", seen[0]);
    assert!(
        seen[0].contains("Authorization: Basic x\r\n") || seen[0].contains("authorization: Basic x\r\n"),
        "{}",
        seen[0]
    );
    assert!(seen[0].ends_with("\r\n\r\n{}"), "the body is sent: {}", seen[0]);
}

#[test]
fn a_redirect_is_not_followed_and_a_short_body_is_an_error() {
    let (address, served) = plain_server(
        b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/steal\r\nContent-Length: 0\r\n\r\n",
        1,
    );
    assert_eq!(get(&Endpoint::plain(&address), "/api/v1/cainfo").expect("answer").status, 302);
    served.join().expect("server");

    let (address, served) =
        plain_server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nshort", 1);
    let error = get(&Endpoint::plain(&address), "/healthz").expect_err("a truncated body");
    assert!(error.to_string().contains(&address), "{error:#}");
    served.join().expect("server");
}

#[test]
fn an_answer_over_the_limit_is_refused() {
    let big: &'static [u8] = Box::leak(
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", MAX_RESPONSE_BYTES + 1)
            .into_bytes()
            .into_iter()
            .chain(std::iter::repeat_n(b'x', MAX_RESPONSE_BYTES as usize + 1))
            .collect::<Vec<u8>>()
            .into_boxed_slice(),
    );
    let (address, served) = plain_server(big, 1);
    get(&Endpoint::plain(&address), "/metrics").expect_err("over the limit");
    served.join().expect("server");
}

#[test]
fn https_checks_the_configured_name_while_connecting_to_the_address() {
    // The server's certificate names ca.hospital.example, not 127.0.0.1.
    let tls = tls_server("ca.hospital.example", 3);
    let answer = get(&https(&tls, Some("ca.hospital.example")), "/api/v1/cainfo").expect("the named server");
    assert_eq!((answer.status, answer.body.as_str()), (200, "secret"));
    // The address's host is not the certificate's name.
    let error = get(&https(&tls, None), "/api/v1/cainfo").expect_err("wrong name");
    assert!(error.to_string().contains("https"), "{error:#}");
    // Nor is another server of the same TLS CA.
    get(&https(&tls, Some("peer0.hospital.example")), "/api/v1/cainfo").expect_err("another name");
    assert_eq!(tls.served.join().expect("server"), 1, "only the named exchange got a request through");
}

#[test]
fn https_trusts_only_the_given_tls_ca() {
    let tls = tls_server("ca.hospital.example", 1);
    let stranger = tls_server("ca.hospital.example", 0);
    let endpoint = Endpoint {
        tls_ca_pem: Some(stranger.ca.certificate_pem().as_bytes().to_vec()),
        server_name: Some("ca.hospital.example".into()),
        ..Endpoint::plain(&tls.address)
    };
    get(&endpoint, "/").expect_err("a server from another TLS CA");
    assert_eq!(tls.served.join().expect("server"), 0);
    assert_eq!(stranger.served.join().expect("server"), 0);
    let empty = Endpoint { tls_ca_pem: Some(b"not a certificate".to_vec()), ..endpoint };
    let error = get(&empty, "/").expect_err("nothing to trust");
    assert!(error.to_string().contains("no TLS CA certificate"), "{error:#}");
}
