//! Out of file descriptors: `accept` returns `EMFILE` as an `io::Error`,
//! and the listener keeps working once descriptors are free again. Runs in
//! a child process, whose `RLIMIT_NOFILE` it lowers.
#![cfg(target_os = "linux")]

use std::time::Duration;

/// Set in the child's environment.
const CHILD: &str = "WQ_TEST_EMFILE_CHILD";

/// Runs `emfile_child` in a child process and checks its verdict.
#[test]
fn accept_reports_emfile_and_the_listener_survives() {
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new(exe)
        .args(["--exact", "emfile_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let ok = stdout
        .lines()
        .find_map(|l| l.find("wq-test-child-ok").map(|at| &l[at..]));
    assert!(
        output.status.success() && ok.is_some(),
        "the child failed:\n{stdout}\n{stderr}"
    );
    println!("{}", ok.unwrap_or_default());
}

/// The child's side; does nothing in a normal test run. 20 clients connect
/// (the kernel queues them), then the descriptor limit is lowered to leave
/// room for 5 more: `accept` fails with `EMFILE` before the 20th, the
/// error reaches the caller, and after the accepted sockets close, the
/// listener accepts the rest.
#[test]
fn emfile_child() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};

    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = wq::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let clients: Vec<_> = (0..20)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        setrlimit(Resource::RLIMIT_NOFILE, open + 5, hard).unwrap();

        let mut accepted = Vec::new();
        let err = loop {
            match listener.accept().await {
                Ok((stream, _)) => accepted.push(stream),
                Err(err) => break err,
            }
            assert!(accepted.len() < 20, "the limit was never reached");
        };
        assert_eq!(err.raw_os_error(), Some(24), "expected EMFILE, got {err:?}");
        let before = accepted.len();
        drop(accepted);
        // The listener still works: the other queued clients are accepted.
        let mut open_now = Vec::new();
        let mut after = 0;
        while before + after < 20 {
            let next = wq::time::timeout(Duration::from_secs(5), listener.accept()).await;
            match next.expect("the listener stopped accepting") {
                Ok((stream, _)) => open_now.push(stream),
                Err(err) => panic!("accept failed after descriptors were freed: {err}"),
            }
            after += 1;
            // Free descriptors as we go, to stay under the limit.
            if open_now.len() == 4 {
                open_now.clear();
            }
        }
        drop(clients);
        println!("wq-test-child-ok: EMFILE after {before} accepts, then the rest accepted");
    });
}
