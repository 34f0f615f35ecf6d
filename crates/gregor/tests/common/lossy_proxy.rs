//! A TCP proxy in front of the broker that loses acknowledgements: it passes requests on, but
//! instead of passing on every `every`-th response it cuts both connections. The broker handled
//! the request, the client never heard: a correct client retries and a correct broker must not
//! apply the retry twice. Point `advertised.listeners` at the proxy so every connection a client
//! opens after bootstrap goes through it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;

pub struct LossyProxy {
    pub port: u16,
    target: Arc<AtomicU16>,
    every: Arc<AtomicUsize>,
    cuts: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Shared {
    target: Arc<AtomicU16>,
    every: Arc<AtomicUsize>,
    cuts: Arc<AtomicUsize>,
    responses: Arc<AtomicUsize>,
}

impl LossyProxy {
    /// Listens on an ephemeral port; connections wait for [`LossyProxy::forward_to`].
    pub fn listen(every: usize) -> LossyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Shared {
            target: Arc::new(AtomicU16::new(0)),
            every: Arc::new(AtomicUsize::new(every)),
            cuts: Arc::new(AtomicUsize::new(0)),
            responses: Arc::new(AtomicUsize::new(0)),
        };
        let proxy = LossyProxy {
            port,
            target: shared.target.clone(),
            every: shared.every.clone(),
            cuts: shared.cuts.clone(),
        };
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || relay(client, &shared));
            }
        });
        proxy
    }

    /// The broker's port (known once it started).
    pub fn forward_to(&self, port: u16) {
        self.target.store(port, Ordering::Release);
    }

    /// Passes every response on from now on.
    pub fn stop_cutting(&self) {
        self.every.store(0, Ordering::Release);
    }

    /// How many connections it cut.
    pub fn cuts(&self) -> usize {
        self.cuts.load(Ordering::Acquire)
    }
}

fn relay(client: TcpStream, shared: &Shared) {
    let deadline = std::time::Instant::now() + super::DEADLINE;
    let port = loop {
        match shared.target.load(Ordering::Acquire) {
            0 if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            0 => return,
            port => break port,
        }
    };
    let Ok(broker) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let (Ok(mut from_client), Ok(mut to_broker)) = (client.try_clone(), broker.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_broker);
        let _ = to_broker.shutdown(Shutdown::Write);
    });
    let (mut from_broker, mut to_client) = (broker, client);
    loop {
        let mut size = [0u8; 4];
        if from_broker.read_exact(&mut size).is_err() {
            break;
        }
        let mut body = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
        if from_broker.read_exact(&mut body).is_err() {
            break;
        }
        let n = shared.responses.fetch_add(1, Ordering::AcqRel) + 1;
        let every = shared.every.load(Ordering::Acquire);
        if every > 0 && n.is_multiple_of(every) {
            shared.cuts.fetch_add(1, Ordering::AcqRel);
            break;
        }
        if to_client.write_all(&size).is_err() || to_client.write_all(&body).is_err() {
            break;
        }
    }
    let _ = from_broker.shutdown(Shutdown::Both);
    let _ = to_client.shutdown(Shutdown::Both);
}
