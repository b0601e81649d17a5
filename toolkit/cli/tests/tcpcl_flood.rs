//! Unauthenticated memory exhaustion on the TCPCL listener: sixteen peers
//! each open a TCPCLv4 session and send 64 KiB segments (the listener's
//! segment MRU) of a transfer they never finish, 12 MiB each. The
//! gateway's resident memory may grow by its `[bp] max-buffer-mib` budget
//! plus a constant (sessions' one-segment read buffers and allocator
//! slack), whatever the peers do; before the budget, each session could
//! buffer a whole transfer: sixteen times `max-adu-mib`.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

mod common;

/// Resident memory of process `pid`, in KiB (Linux).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Contact header and SESS_INIT of an active peer (RFC 9174 §4.2, §4.6).
fn session_start(node: &str) -> Vec<u8> {
    let mut out = b"dtn!\x04\x00".to_vec();
    out.push(0x07); // SESS_INIT
    out.extend_from_slice(&0u16.to_be_bytes()); // no keepalives
    out.extend_from_slice(&(64u64 << 10).to_be_bytes()); // segment MRU
    out.extend_from_slice(&(64u64 << 20).to_be_bytes()); // transfer MRU
    out.extend_from_slice(&(node.len() as u16).to_be_bytes());
    out.extend_from_slice(node.as_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // no session extensions
    out
}

/// An XFER_SEGMENT of transfer 0 (§5.2.2); the first one has START.
fn segment(first: bool, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x01, if first { 0x02 } else { 0x00 }];
    out.extend_from_slice(&0u64.to_be_bytes()); // transfer ID
    if first {
        out.extend_from_slice(&0u32.to_be_bytes()); // no transfer extensions
    }
    out.extend_from_slice(&(data.len() as u64).to_be_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn sixteen_peers_cannot_push_the_listener_past_its_buffer_budget() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let sink = common::free_port();
    let toml = format!(
        "name = \"gw.moon.example\"\nspool = \"spool\"\n[bp]\nnode-id = \"ipn:2.0\"\n\
         listen = \"127.0.0.1:{port}\"\nendpoints = [\"ipn:2.25\"]\nmax-adu-mib = 16\n\
         max-buffer-mib = 8\n[relay]\nsmtp = \"127.0.0.1:{sink}\"\ndomains = [\"moon.example\"]\n"
    );
    let mut gateway = common::spawn_gateway(dir.path(), "moon", toml);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    common::wait_listening(addr, "the TCPCL listener");
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kib(gateway.id());

    let data = vec![0x5a; 64 << 10];
    let mut peers = Vec::new();
    for n in 0..16 {
        let mut peer = TcpStream::connect(addr).unwrap();
        peer.set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = peer.write_all(&session_start(&format!("ipn:{}.0", 100 + n)));
        peers.push(peer);
    }
    // 12 MiB per peer (192 MiB offered in all), never ending a transfer; a
    // peer whose transfer was refused just keeps writing.
    for round in 0..192 {
        for peer in &mut peers {
            let _ = peer.write_all(&segment(round == 0, &data));
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = rss_kib(gateway.id());
    let grown_mib = after.saturating_sub(before) / 1024;
    // The budget (8 MiB) plus a constant: sixteen sessions' one-segment
    // read buffers, socket bookkeeping and allocator slack.
    let _ = gateway.kill();
    let _ = gateway.wait();
    eprintln!("tcpcl flood: the gateway grew by {grown_mib} MiB");
    assert!(
        grown_mib <= 8 + 24,
        "the gateway grew by {grown_mib} MiB under the flood (budget 8 MiB + 24 MiB)"
    );
}
