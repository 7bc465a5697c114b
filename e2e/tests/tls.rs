//! SSL listeners with a real client: kcat (librdkafka, OpenSSL) produces and consumes over TLS,
//! verifying the broker's certificate and host name, and presents a client certificate where the
//! listener requires one. Clients that do not trust the broker, that bring no certificate to a
//! `ssl.client.auth=required` listener, or that speak plaintext to a TLS port are refused, and the
//! broker goes on serving everyone else. Fetches over TLS copy record data; the plaintext listener
//! sends the same records from the segment files with sendfile.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use strait_e2e::exposition::Scrape;
use strait_e2e::kcat::kcat;
use strait_e2e::pki::Pki;
use strait_e2e::{Broker, BrokerOptions, free_port};

const ZERO_COPY: &str = "strait_fetch_zero_copy_bytes_total";

/// kcat arguments that read all of `tls-topic` as `key:value` lines and exit.
const CONSUME_ALL: &[&str] = &[
    "-C",
    "-t",
    "tls-topic",
    "-o",
    "beginning",
    "-e",
    "-f",
    "%k:%s\n",
];

fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A broker with a PLAINTEXT listener (the harness's port), an SSL listener, and an SSL listener
/// that requires client certificates.
fn start(pki: &Pki) -> (Broker, u16, u16, SocketAddr) {
    let plain = free_port().unwrap();
    let tls = free_port().unwrap();
    let mtls = free_port().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap())
        .parse()
        .unwrap();
    let metrics_listener = metrics.to_string();
    let keystore = path_str(&pki.path("keystore.pem"));
    let ca = path_str(&pki.path("ca.pem"));
    let listeners =
        format!("PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{tls},MTLS://127.0.0.1:{mtls}");
    let overrides = [
        ("listeners", listeners.as_str()),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL",
        ),
        // Global keys for both listeners, a per-listener key on top for the second.
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", keystore.as_str()),
        ("listener.name.mtls.ssl.client.auth", "required"),
        ("listener.name.mtls.ssl.truststore.type", "PEM"),
        ("listener.name.mtls.ssl.truststore.location", ca.as_str()),
        ("metrics.listener", metrics_listener.as_str()),
    ];
    let mut options = BrokerOptions::with_overrides(&overrides);
    options.port = Some(plain);
    let broker = Broker::start_with(options).expect("start broker with SSL listeners");
    (broker, tls, mtls, metrics)
}

/// Record bytes the broker sent from files with sendfile so far.
fn zero_copy_bytes(metrics: SocketAddr) -> f64 {
    Scrape::fetch(metrics, Duration::from_secs(5))
        .expect("scrape")
        .sum(ZERO_COPY, &[])
        .expect("the zero-copy counter is exported")
}

fn tls_args(port: u16, ca: &Path) -> Vec<String> {
    args(&[
        "-b",
        &format!("127.0.0.1:{port}"),
        "-X",
        "security.protocol=ssl",
        "-X",
        &format!("ssl.ca.location={}", path_str(ca)),
        "-X",
        "ssl.endpoint.identification.algorithm=https",
    ])
}

#[test]
fn kcat_produces_and_consumes_over_tls_and_untrusted_clients_are_refused() {
    let pki = Pki::generate().expect("test PKI");
    let (mut broker, tls, mtls, metrics) = start(&pki);
    let ca = pki.path("ca.pem");

    let lines: Vec<String> = (0..300).map(|i| format!("k{i}:tls value {i}")).collect();
    let input = lines.join("\n") + "\n";
    let mut produce = tls_args(tls, &ca);
    produce.extend(args(&["-P", "-t", "tls-topic", "-K:", "-X", "acks=all"]));
    let produced = kcat(&produce, input.as_bytes(), Duration::from_secs(60));
    assert!(produced.status.success(), "kcat -P over TLS: {produced:?}");

    let mut consume = tls_args(tls, &ca);
    consume.extend(args(CONSUME_ALL));
    let consumed = kcat(&consume, b"", Duration::from_secs(60));
    assert!(consumed.status.success(), "kcat -C over TLS: {consumed:?}");
    let got: Vec<String> = String::from_utf8_lossy(&consumed.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(got, lines, "every record comes back over TLS, in order");

    // Metadata over TLS advertises the TLS listener, so the client stays on TLS.
    let mut list = tls_args(tls, &ca);
    list.extend(args(&["-L", "-t", "tls-topic"]));
    let listed = kcat(&list, b"", Duration::from_secs(30));
    let listing = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success() && listing.contains(&format!("127.0.0.1:{tls}")),
        "kcat -L over TLS: {listed:?}"
    );

    // A client that does not trust the broker's CA.
    let mut untrusted = tls_args(tls, &pki.path("other-ca.pem"));
    untrusted.extend(args(&["-L", "-m", "5"]));
    let refused = kcat(&untrusted, b"", Duration::from_secs(30));
    assert!(
        !refused.status.success(),
        "a client that does not trust the CA must fail: {refused:?}"
    );

    // Plaintext spoken to the TLS port: the handshake fails, only that connection goes.
    let plain_to_tls = kcat(
        &args(&["-b", &format!("127.0.0.1:{tls}"), "-L", "-m", "5"]),
        b"",
        Duration::from_secs(30),
    );
    assert!(!plain_to_tls.status.success(), "{plain_to_tls:?}");

    // The mutual-TLS listener wants a client certificate...
    let mut anonymous = tls_args(mtls, &ca);
    anonymous.extend(args(&["-L", "-m", "5"]));
    let anonymous = kcat(&anonymous, b"", Duration::from_secs(30));
    assert!(
        !anonymous.status.success(),
        "a client without a certificate must be refused: {anonymous:?}"
    );
    // ...and serves a client that shows one signed by the trusted CA.
    let mut with_cert = tls_args(mtls, &ca);
    with_cert.extend(args(&[
        "-X",
        &format!(
            "ssl.certificate.location={}",
            path_str(&pki.path("client.pem"))
        ),
        "-X",
        &format!("ssl.key.location={}", path_str(&pki.path("client.key"))),
    ]));
    with_cert.extend(args(CONSUME_ALL));
    let mutual = kcat(&with_cert, b"", Duration::from_secs(60));
    assert!(mutual.status.success(), "kcat over mutual TLS: {mutual:?}");
    assert_eq!(String::from_utf8_lossy(&mutual.stdout).lines().count(), 300);

    // TLS encrypts in user space: every record so far was read into memory and copied.
    assert_eq!(
        zero_copy_bytes(metrics),
        0.0,
        "no sendfile on TLS listeners"
    );

    // Refused handshakes cost the broker nothing: it is alive and the plaintext port serves.
    broker.assert_alive().unwrap();
    let stderr = broker.stderr();
    assert!(stderr.contains("TLS handshake failed"), "{stderr}");
    let plain = kcat(
        &args(&["-b", &broker.bootstrap(), "-L", "-t", "tls-topic"]),
        b"",
        Duration::from_secs(30),
    );
    assert!(plain.status.success(), "{plain:?}");

    // On the plaintext listener the same records come back byte for byte, sent from the segment
    // file with sendfile (zero copy).
    let mut plain_consume = args(&["-b", &broker.bootstrap()]);
    plain_consume.extend(args(CONSUME_ALL));
    let consumed = kcat(&plain_consume, b"", Duration::from_secs(60));
    assert!(
        consumed.status.success(),
        "kcat -C over plaintext: {consumed:?}"
    );
    let got: Vec<String> = String::from_utf8_lossy(&consumed.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        got, lines,
        "every record comes back over plaintext, in order"
    );
    assert!(
        zero_copy_bytes(metrics) > 0.0,
        "plaintext fetches send record data with sendfile"
    );
}

/// Runs the broker with SSL listener `overrides` that must stop it at start; returns its stderr.
fn refused_start(overrides: &[String]) -> String {
    let port = free_port().unwrap();
    let tls = free_port().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut args = vec![
        format!("listeners=PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{tls}"),
        format!("log.dirs={}", path_str(data.path())),
        "metrics.listener=".to_string(),
    ];
    args.extend_from_slice(overrides);
    let output = Command::new(strait_e2e::broker_binary().unwrap())
        .args(args.iter().flat_map(|a| ["--override", a.as_str()]))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success(), "the start must fail: {output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_bad_keystore_stops_the_start_with_the_file_named() {
    let pki = Pki::generate().expect("test PKI");
    // A certificate file with no key in it.
    let ca = pki.path_str("ca.pem");
    let stderr = refused_start(&[
        "ssl.keystore.type=PEM".to_string(),
        format!("ssl.keystore.location={ca}"),
    ]);
    assert!(
        stderr.contains(&ca) && stderr.contains("private key"),
        "the error names the file and what is missing: {stderr}"
    );

    // A JKS keystore is refused by name before anything is read.
    let stderr = refused_start(&["ssl.keystore.location=/etc/kafka/keystore.jks".to_string()]);
    assert!(
        stderr.contains("ssl.keystore.type") && stderr.contains("PEM"),
        "{stderr}"
    );
}
