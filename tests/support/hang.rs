//! A test that outlives its limit ends the test binary with a report of
//! where everything waits, instead of holding CI until its own timeout:
//! every process this binary started (state and kernel wait channel) and
//! the threads' stacks of this binary and of each `qsign` child (gdb).
//!
//! [`run`] also covers the runtime's end: a tokio runtime that drops waits
//! for its blocking tasks, so `#[tokio::test]` would wait for ever on one
//! that never returns, after its body (and any guard in it) had ended.
//! Seen twice in CI: `recovery::a_network_hsm_lost_and_back_under_load`
//! still running after 25 and 90 minutes with no qsign or p11-kit process
//! left.

use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Runs `test` on a multi-threaded runtime of its own under a [`HangGuard`]
/// of `limit` that lasts until the runtime has shut down (blocking tasks
/// get 30 s, then are left behind). The report names the test by its
/// thread, which the test harness names after it.
pub fn run(limit: Duration, test: impl Future<Output = ()>) {
    let current = std::thread::current();
    let _hang = HangGuard::new(current.name().unwrap_or("a test"), limit);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(test);
    runtime.shutdown_timeout(Duration::from_secs(30));
}

/// Lines of each qsign log in the report.
const LOG_LINES: usize = 40;

/// Armed while alive; dropped (the test ended, passed or panicked) it
/// disarms.
pub struct HangGuard {
    done: Arc<(Mutex<bool>, Condvar)>,
}

impl HangGuard {
    pub fn new(test: &str, limit: Duration) -> Self {
        let test = test.to_owned();
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let watched = done.clone();
        std::thread::spawn(move || {
            let (ended, wake) = &*watched;
            let ended = ended.lock().unwrap_or_else(|p| p.into_inner());
            let (ended, _) = wake
                .wait_timeout_while(ended, limit, |ended| !*ended)
                .unwrap_or_else(|p| p.into_inner());
            if !*ended {
                let said =
                    format!("\n{test} did not end within {limit:?}: a hang. Where it waits:\n");
                // Past the test harness's capture, which would drop it at exit.
                let _ = std::io::stderr().write_all((said + &report()).as_bytes());
                end_children();
                std::process::exit(101);
            }
        });
        Self { done }
    }
}

impl Drop for HangGuard {
    fn drop(&mut self) {
        let (ended, wake) = &*self.done;
        *ended.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
    }
}

/// The process tree under this binary, then the stacks of this binary's
/// threads and of every `qsign` below it.
fn report() -> String {
    let mut said = String::new();
    let me = std::process::id();
    let tree = output_of(
        "ps",
        &[
            "-e",
            "--forest",
            "-o",
            "pid,ppid,pgid,stat,wchan:32,etime,args",
        ],
    );
    let mut qsign = Vec::new();
    for line in tree.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [pid, ppid, ..] = fields[..] else {
            continue;
        };
        if ppid == me.to_string() || pid == me.to_string() || line.contains("p11-kit") {
            let _ = writeln!(said, "  {line}");
            if line.contains("qsign serve") {
                let config = fields.iter().skip_while(|f| **f != "--config").nth(1);
                qsign.push((
                    pid.to_owned(),
                    config.map(|c| Path::new(c).with_extension("log")),
                ));
            }
        }
    }
    for (pid, log) in std::iter::once((me.to_string(), None)).chain(qsign) {
        if let Some(log) = log {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(LOG_LINES).collect();
            let _ = writeln!(said, "--- the last lines of {}", log.display());
            for line in tail.iter().rev() {
                let _ = writeln!(said, "{line}");
            }
        }
        let _ = writeln!(said, "--- threads of {pid}");
        let gdb = [
            "60",
            "gdb",
            "-batch",
            "-p",
            &pid,
            "-ex",
            "thread apply all bt 16",
        ];
        // Frames with every generic parameter spelt out run to pages.
        for line in output_of("timeout", &gdb).lines() {
            if line.starts_with('#') || line.starts_with("Thread") {
                let cut = line.char_indices().nth(200).map_or(line.len(), |(i, _)| i);
                let _ = writeln!(said, "{}", &line[..cut]);
            }
        }
    }
    said
}

/// `exit` runs no destructor: what would kill this binary's children
/// (qsign servers, p11-kit servers and their process groups) is done here.
fn end_children() {
    let me = std::process::id().to_string();
    let children = output_of("ps", &["-o", "pid=", "--ppid", &me]);
    for pid in children.split_whitespace() {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}"), pid])
            .output();
    }
}

fn output_of(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(out) => {
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr)
        }
        Err(e) => format!("{program}: {e}"),
    }
}
