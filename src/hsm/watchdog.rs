//! A token that hangs rather than fails (a network HSM or p11-kit server
//! that stops answering): its PKCS#11 calls block for ever and return no
//! error for `link` to notice, and a thread inside a C call cannot be
//! cancelled. So a probe thread asks the token for its info
//! (C_GetTokenInfo, PKCS#11 v3.0 §5.5) every second and the watchdog
//! thread waits for the answer; past the timeout the token is Down
//! (`Link::lost`): requests fail UNAVAILABLE at once instead of queueing
//! behind the stuck workers, and health says NOT_SERVING. When the token
//! answers again, the stuck calls return, their workers serve again, and
//! the recovery thread (which waits for them) makes the link Up.
//!
//! ```text
//! watchdog ── ask ──► probe thread: C_GetTokenInfo ── answer ──► watchdog
//!    └─ no answer within the timeout: Down; wait for that answer, then
//!       probe again (one probe at a time, never a pile of stuck ones)
//! ```

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::link::Link;
use super::HsmError;

/// Time between two probes.
const INTERVAL: Duration = Duration::from_secs(1);

/// Starts the watchdog thread (which starts the probe thread); it ends
/// when the link stops.
pub(super) fn start(link: Arc<Link>, timeout: Duration) -> Result<JoinHandle<()>, HsmError> {
    std::thread::Builder::new()
        .name("qsign-hsm-watchdog".into())
        .spawn(move || watch(&link, timeout))
        .map_err(|_| HsmError::Token("cannot start the HSM watchdog thread"))
}

fn watch(link: &Arc<Link>, timeout: Duration) {
    let (ask, asked) = mpsc::channel::<()>();
    let (answer, answers) = mpsc::channel::<Result<(), HsmError>>();
    let probing = link.clone();
    let probe = std::thread::Builder::new()
        .name("qsign-hsm-probe".into())
        .spawn(move || {
            while asked.recv().is_ok() {
                if answer.send(probing.probe_token()).is_err() {
                    return;
                }
            }
        });
    let Ok(probe) = probe else {
        tracing::error!("cannot start the HSM probe thread; a hung token goes unnoticed");
        return;
    };
    let mut stuck = false;
    while !stuck && link.wait(Some(INTERVAL.min(timeout))) {
        if ask.send(()).is_err() {
            break;
        }
        match answers.recv_timeout(timeout) {
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => {
                link.lost(&HsmError::Hung(timeout));
                stuck = !answered(link, &answers);
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    drop(ask);
    // A probe still inside a hung call is left behind, not waited for,
    // and counted: shutdown then closes no session (`Pool::close`).
    if stuck {
        tracing::warn!("the watchdog's probe is left inside C_GetTokenInfo");
        link.leave_behind(1);
    } else {
        let _ = probe.join();
    }
}

/// Waits for the stuck probe's answer; false if the link stops first.
fn answered(link: &Link, answers: &mpsc::Receiver<Result<(), HsmError>>) -> bool {
    loop {
        match answers.recv_timeout(INTERVAL) {
            Ok(_) => {
                tracing::info!("the HSM token answers again");
                return true;
            }
            Err(RecvTimeoutError::Timeout) if link.wait(Some(Duration::ZERO)) => {}
            Err(_) => return false,
        }
    }
}
