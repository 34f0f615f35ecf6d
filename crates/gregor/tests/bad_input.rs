//! Hostile and broken frames on a raw socket: the answer is a Kafka error or a closed connection,
//! never a dead or wedged broker.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::{send_ok, Gregor, Rec};
use rdkafka::message::Message;

#[derive(Debug, PartialEq)]
enum Outcome {
    Closed,
    Answered(Vec<u8>),
}

fn connect(g: &Gregor) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", g.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Waits (at most 5 s) for the broker to either close the connection or send something.
fn outcome(s: &mut TcpStream) -> Outcome {
    let mut buf = vec![0u8; 64 * 1024];
    match s.read(&mut buf) {
        Ok(0) => Outcome::Closed,
        Ok(n) => Outcome::Answered(buf[..n].to_vec()),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Outcome::Closed,
        Err(e) => panic!("connection neither closed nor answered within 5 s: {e}"),
    }
}

fn frame(api_key: i16, version: i16, correlation: i32, flexible: bool, body: &[u8]) -> Vec<u8> {
    common::raw_frame(api_key, version, correlation, flexible, body)
}

/// The broker is alive, still answers ApiVersions v0 on a new connection, and a normal
/// rdkafka produce + consume works.
fn assert_healthy(g: &mut Gregor, case: &str, round: usize) {
    assert!(g.is_alive(), "{case}: broker process died");
    let mut s = connect(g);
    s.write_all(&frame(18, 0, 7, false, &[])).unwrap();
    let (corr, error, keys) = read_api_versions_v0(&mut s);
    assert_eq!(
        (corr, error),
        (7, 0),
        "{case}: ApiVersions v0 after the bad input"
    );
    assert!(keys.iter().any(|k| k.0 == 0), "{case}: Produce advertised");

    let topic = format!("health-{round}");
    let producer = g.producer(&[]);
    let value = format!("after {case}");
    let d = send_ok(&producer, &topic, &[Rec::value(value.clone())]);
    assert_eq!(d[0].offset, 0, "{case}");
    let got = g.consume(&topic, &[0], 1);
    assert_eq!(got[0].payload(), Some(value.as_bytes()), "{case}");
    assert!(g.is_alive(), "{case}: broker process died");
}

/// Reads one size-prefixed ApiVersionsResponse v0: (correlation id, error code, api keys with
/// (key, min, max)).
fn read_api_versions_v0(s: &mut TcpStream) -> (i32, i16, Vec<(i16, i16, i16)>) {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).expect("response size");
    let size = i32::from_be_bytes(size);
    assert!((10..1_000_000).contains(&size), "response size {size}");
    let mut body = vec![0u8; size as usize];
    s.read_exact(&mut body).expect("response body");
    let i16_at = |p: usize| i16::from_be_bytes(body[p..p + 2].try_into().unwrap());
    let i32_at = |p: usize| i32::from_be_bytes(body[p..p + 4].try_into().unwrap());
    let corr = i32_at(0);
    let error = i16_at(4);
    let n = i32_at(6);
    assert!(
        (0..1000).contains(&n) && 10 + 6 * n as usize <= body.len(),
        "api_keys count {n} with body of {} bytes",
        body.len()
    );
    let keys = (0..n as usize)
        .map(|i| {
            let p = 10 + 6 * i;
            (i16_at(p), i16_at(p + 2), i16_at(p + 4))
        })
        .collect();
    (corr, error, keys)
}

#[test]
fn hostile_frames_never_hurt_the_broker() {
    let mut g = Gregor::start(&[]);
    let mut round = 0;
    let mut check = |g: &mut Gregor, case: &str| {
        round += 1;
        assert_healthy(g, case, round);
    };

    // Size prefix 0x7fffffff, far above socket.request.max.bytes.
    let mut s = connect(&g);
    s.write_all(&0x7fff_ffffi32.to_be_bytes()).unwrap();
    s.write_all(&[0u8; 16]).unwrap();
    assert_eq!(outcome(&mut s), Outcome::Closed, "size 0x7fffffff");
    check(&mut g, "size 0x7fffffff");

    // Negative size.
    let mut s = connect(&g);
    s.write_all(&(-5i32).to_be_bytes()).unwrap();
    s.write_all(&[1u8; 16]).unwrap();
    assert_eq!(outcome(&mut s), Outcome::Closed, "negative size");
    check(&mut g, "negative size");

    // 64 bytes of garbage (its first 4 bytes read as a negative size).
    let garbage: Vec<u8> = (0..64u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80)
        .collect();
    let mut s = connect(&g);
    s.write_all(&garbage).unwrap();
    assert_eq!(outcome(&mut s), Outcome::Closed, "64 bytes of garbage");
    check(&mut g, "64 bytes of garbage");

    // A well-sized frame whose content is garbage (size 60, then 60 garbage bytes).
    let mut s = connect(&g);
    s.write_all(&60i32.to_be_bytes()).unwrap();
    s.write_all(&garbage[..60]).unwrap();
    assert_eq!(outcome(&mut s), Outcome::Closed, "garbage frame");
    check(&mut g, "garbage frame");

    // Truncated frame: size 100, 10 bytes, then end of stream.
    let mut s = connect(&g);
    s.write_all(&100i32.to_be_bytes()).unwrap();
    s.write_all(&[0u8; 10]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(outcome(&mut s), Outcome::Closed, "truncated frame");
    check(&mut g, "truncated frame");

    // Tiny frames: size 0, 1, 3 (shorter than any request header).
    for size in [0i32, 1, 3] {
        let mut s = connect(&g);
        s.write_all(&size.to_be_bytes()).unwrap();
        s.write_all(&vec![0u8; size as usize]).unwrap();
        let o = outcome(&mut s);
        assert_eq!(o, Outcome::Closed, "frame of size {size}");
    }
    check(&mut g, "tiny frames");

    // A well-formed header with API key 9999.
    let mut s = connect(&g);
    s.write_all(&frame(9999, 0, 42, false, &[])).unwrap();
    assert_eq!(outcome(&mut s), Outcome::Closed, "api key 9999");
    check(&mut g, "api key 9999");

    // A known API (Metadata) at a version that does not exist.
    let mut s = connect(&g);
    s.write_all(&frame(3, 999, 43, false, &[0, 0, 0, 0]))
        .unwrap();
    assert_eq!(outcome(&mut s), Outcome::Closed, "metadata v999");
    check(&mut g, "metadata v999");

    // Hostile array length: Metadata v1 claiming 0x7fffffff topics with no bytes behind it
    // (crashed the kafka-protocol codec with a huge allocation, see FIELD-NOTES).
    let mut s = connect(&g);
    s.write_all(&frame(3, 1, 44, false, &0x7fff_ffffi32.to_be_bytes()))
        .unwrap();
    assert_eq!(
        outcome(&mut s),
        Outcome::Closed,
        "metadata with 2^31 topics"
    );
    check(&mut g, "metadata with 2^31-1 topics");

    // Same with a flexible version (compact array length as a huge varint).
    let mut s = connect(&g);
    s.write_all(&frame(3, 12, 45, true, &[0xff, 0xff, 0xff, 0xff, 0x07]))
        .unwrap();
    assert_eq!(
        outcome(&mut s),
        Outcome::Closed,
        "metadata v12 huge compact array"
    );
    check(&mut g, "metadata v12 with a huge compact array");

    // Produce v9 with a huge compact array of topics.
    let mut body = vec![];
    body.push(0); // transactional_id: null compact string
    body.extend_from_slice(&(-1i16).to_be_bytes()); // acks
    body.extend_from_slice(&30_000i32.to_be_bytes()); // timeout
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]); // topics: 2^31 entries
    let mut s = connect(&g);
    s.write_all(&frame(0, 9, 46, true, &body)).unwrap();
    assert_eq!(outcome(&mut s), Outcome::Closed, "produce v9 huge array");
    check(&mut g, "produce v9 with a huge compact array");

    // ApiVersions v99: a v0 response with UNSUPPORTED_VERSION (35) and the supported ranges
    // (KIP-511). The header of a v3+ ApiVersions request is flexible (header v2).
    let mut body = vec![];
    body.push(5); // client_software_name: compact string "gtst"
    body.extend_from_slice(b"gtst");
    body.push(4); // client_software_version "1.0"
    body.extend_from_slice(b"1.0");
    body.push(0); // tagged fields
    let mut s = connect(&g);
    s.write_all(&frame(18, 99, 0x1234_5678, true, &body))
        .unwrap();
    let (corr, error, keys) = read_api_versions_v0(&mut s);
    assert_eq!(corr, 0x1234_5678, "correlation id echoed");
    assert_eq!(error, 35, "UNSUPPORTED_VERSION");
    assert!(
        !keys.is_empty(),
        "api_keys must list the supported versions"
    );
    let av = keys
        .iter()
        .find(|k| k.0 == 18)
        .expect("ApiVersions (18) listed");
    assert_eq!(av.1, 0, "ApiVersions min version");
    assert!(av.2 >= 3, "ApiVersions max version {}", av.2);
    let produce = keys.iter().find(|k| k.0 == 0).expect("Produce listed");
    assert_eq!(produce.1, 0, "Produce min version must be 0 (KAFKA-18659)");
    // The connection stays usable: a v0 request on it is answered.
    s.write_all(&frame(18, 0, 99, false, &[])).unwrap();
    let (corr, error, _) = read_api_versions_v0(&mut s);
    assert_eq!((corr, error), (99, 0));
    check(&mut g, "ApiVersions v99");

    // A client that sends a request and disappears before reading the answer.
    for i in 0..20 {
        let mut s = connect(&g);
        s.write_all(&frame(18, 0, i, false, &[])).unwrap();
        drop(s);
    }
    check(&mut g, "clients vanishing mid-request");
}
