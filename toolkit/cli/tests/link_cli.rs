//! `deepmail link` as a child process: it relays TCP and UDP echo servers
//! with a small delay, prints its listening addresses as a JSON line,
//! periodic stats and, on SIGTERM, a final summary; bad flag values are
//! rejected naming the flag and the value.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Kills the link if the test fails half-way.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tcp_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn udp_echo() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    });
    addr
}

fn addr(v: &Value) -> SocketAddr {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn relays_tcp_and_udp_with_a_delay_and_reports_counters() {
    let (tcp_target, udp_target) = (tcp_echo(), udp_echo());
    let child = common::deepmail()
        .arg("link")
        .args(["--tcp", &format!("127.0.0.1:0={tcp_target}")])
        .args(["--udp", &format!("127.0.0.1:0={udp_target}")])
        .args(["--delay", "1min", "--scale", "600"]) // 100 ms
        .args(["--seed", "5", "--stats-interval", "0.2", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut link = Running(child);
    let mut stdout = BufReader::new(link.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let start: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(start["event"], "listening");
    assert_eq!(start["seed"], 5);
    assert_eq!(start["up"]["delay_s"], 60.0);
    assert_eq!(start["effective"]["down"]["delay_s"], 0.1);
    assert_eq!(addr(&start["tcp"][0]["target"]), tcp_target);
    let tcp_relay = addr(&start["tcp"][0]["listen"]);
    let udp_relay = addr(&start["udp"][0]["listen"]);
    assert_ne!(tcp_relay.port(), 0);
    assert_ne!(udp_relay.port(), 0);
    let delay = Duration::from_millis(100);

    let began = Instant::now();
    let mut c = TcpStream::connect(tcp_relay).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"hello").unwrap();
    let mut back = [0u8; 5];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hello");
    assert!(began.elapsed() >= delay * 2, "{:?}", began.elapsed());
    drop(c);

    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let began = Instant::now();
    u.send_to(b"ping", udp_relay).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = u.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"ping"[..], udp_relay));
    assert!(began.elapsed() >= delay * 2, "{:?}", began.elapsed());

    // Let a stats line or two go by (and the TCP close cross the link).
    std::thread::sleep(Duration::from_millis(500));
    let status = Command::new("kill")
        .args(["-TERM", &link.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = link.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "link did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    link.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(exit.success(), "{exit:?}\n{stderr}");

    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(lines.iter().any(|l| l["event"] == "stats"), "{stderr}");
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "final", "{stderr}");
    assert_eq!(last["signal"], "SIGTERM");
    let tcp = &last["relays"][0];
    assert_eq!(tcp["protocol"], "tcp");
    assert_eq!(addr(&tcp["listen"]), tcp_relay);
    assert_eq!(tcp["connections"], 1);
    assert_eq!(tcp["up"]["bytes_in"], 5);
    assert_eq!(tcp["up"]["bytes_out"], 5);
    assert_eq!(tcp["down"]["bytes_out"], 5);
    let udp = &last["relays"][1];
    assert_eq!(udp["protocol"], "udp");
    assert_eq!(udp["connections"], 1);
    assert_eq!(udp["up"]["datagrams_out"], 1);
    assert_eq!(udp["down"]["datagrams_out"], 1);
    assert_eq!(udp["down"]["bytes_out"], 4);
}

#[test]
fn bad_values_are_rejected_naming_the_flag_and_the_value() {
    let relay = "--tcp=127.0.0.1:0=127.0.0.1:9";
    for (flag, value) in [
        ("--delay", "5parsecs"),
        ("--delay", "down=1.28"),
        ("--loss", "1.5"),
        ("--rate", "up=fast"),
        ("--jitter", "lots"),
        ("--scale", "0"),
        ("--udp", "127.0.0.1:53"),
    ] {
        let err = common::fails(&["link", relay, flag, value]);
        assert!(
            err.contains(flag) && err.contains(value),
            "{flag} {value}: {err}"
        );
    }
    let err = common::fails(&["link", "--delay", "1s"]);
    assert!(err.contains("relays nothing"), "{err}");
}

#[test]
fn a_taken_port_is_reported() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap();
    let err = common::fails(&["link", "--tcp", &format!("{port}=127.0.0.1:9")]);
    assert!(err.contains(&port.to_string()), "{err}");
}

/// `--schedule`: a window of the contact plan opens 60 s into the link's
/// time (0.6 s at scale 100); TCP bytes sent before it are held and cross
/// when it opens, UDP datagrams are dropped with `--down drop` while it is
/// closed and pass once it is open.
#[test]
fn a_scheduled_link_holds_tcp_and_drops_udp_until_the_window_opens() {
    let (tcp_target, udp_target) = (tcp_echo(), udp_echo());
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("moon.ionrc");
    std::fs::write(
        &plan,
        "# Earth (1) and the Moon (2)\na contact +60 +6000 1 2 125000\na contact +60 +6000 2 1 125000\n",
    )
    .unwrap();
    let child = common::deepmail()
        .arg("link")
        .args(["--tcp", &format!("127.0.0.1:0={tcp_target}")])
        .args(["--udp", &format!("127.0.0.1:0={udp_target}")])
        .args(["--scale", "100", "--down", "drop", "--json"])
        .arg("--schedule")
        .arg(&plan)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut link = Running(child);
    let mut stdout = BufReader::new(link.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let start: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(start["schedule"]["mode"], "drop");
    assert_eq!(start["schedule"]["up"][0][0], 60_000);
    let (tcp_relay, udp_relay) = (
        addr(&start["tcp"][0]["listen"]),
        addr(&start["udp"][0]["listen"]),
    );

    // While closed: a UDP datagram is dropped.
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_millis(150)))
        .unwrap();
    u.send_to(b"early", udp_relay).unwrap();
    let mut buf = [0u8; 16];
    assert!(
        u.recv_from(&mut buf).is_err(),
        "dropped while the link is down"
    );
    assert!(
        started.elapsed() < Duration::from_millis(550),
        "the window opened too soon for this check"
    );

    // TCP sent while closed is held, and crosses once the window opens.
    let mut c = TcpStream::connect(tcp_relay).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"held").unwrap();
    let mut back = [0u8; 4];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"held");
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );

    // Open now: UDP passes.
    u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    u.send_to(b"late", udp_relay).unwrap();
    let (n, _) = u.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"late");
}

#[test]
fn a_bad_schedule_names_the_file_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("bad.ionrc");
    std::fs::write(
        &plan,
        "a contact +0 +10 1 2 100\na contact +20 +5 1 2 100\n",
    )
    .unwrap();
    let out = common::deepmail()
        .args(["link", "--tcp", "127.0.0.1:0=127.0.0.1:9", "--schedule"])
        .arg(&plan)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.ionrc") && err.contains("line 2"), "{err}");
}
