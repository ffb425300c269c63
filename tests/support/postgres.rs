//! A throw-away PostgreSQL server for one test: `initdb` and `pg_ctl` (Debian
//! `postgresql`) in a temporary directory on a free loopback port, trust
//! authentication, stopped when dropped. As root the server runs as the
//! `postgres` user (PostgreSQL refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::tools::in_ci;

pub struct Postgres {
    pub url: String,
    data: PathBuf,
    bin: PathBuf,
    _dir: tempfile::TempDir,
}

/// Where Debian keeps the server binaries (`/usr/lib/postgresql/N/bin`).
fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a server binary, as `postgres` when we are root.
fn run(bin: &Path, tool: &str, args: &[&str]) -> Result<(), String> {
    let program = bin.join(tool);
    let output = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&program)
            .args(args)
            .output()
    } else {
        Command::new(&program).args(args).output()
    }
    .map_err(|e| format!("{tool}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Postgres {
    /// A running server, or None (a note) when PostgreSQL is not installed;
    /// under `CI=true` a missing PostgreSQL fails the test.
    pub fn start() -> Option<Self> {
        let Some(bin) = bin_dir() else {
            assert!(
                !in_ci(),
                "PostgreSQL (Debian postgresql) is required under CI=true"
            );
            eprintln!("note: PostgreSQL not installed; skipping this check");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("qsign-pg-")
            .tempdir()
            .expect("tempdir");
        let data = dir.path().join("data");
        if is_root() {
            // The postgres user must own its data and reach the directory.
            std::fs::create_dir(&data).expect("data dir");
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success());
        }
        let data_arg = data.to_str().expect("utf-8 path");
        run(
            &bin,
            "initdb",
            &[
                "-D", data_arg, "-A", "trust", "-U", "postgres", "-E", "UTF8",
            ],
        )
        .expect("initdb");
        let port = free_port();
        let options = format!("-p {port} -k {data_arg} -c listen_addresses=127.0.0.1 -c fsync=on");
        let log = data.join("server.log");
        run(
            &bin,
            "pg_ctl",
            &[
                "-D",
                data_arg,
                "-o",
                &options,
                "-l",
                log.to_str().expect("utf-8"),
                "-w",
                "start",
            ],
        )
        .expect("pg_ctl start");
        Some(Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            data,
            bin,
            _dir: dir,
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data.to_string_lossy().into_owned();
        let _ = run(
            &self.bin,
            "pg_ctl",
            &["-D", &data, "-m", "immediate", "-w", "stop"],
        );
    }
}
