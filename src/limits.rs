//! Limits per calling system and in total (SPEC §12): requests in progress
//! and per second of each caller, a memory budget for request messages, a
//! rate for anonymous HSM work, and connection caps (`connection`). Past a
//! limit the answer is an error at once, never a queue. No gRPC types here: the
//! front doors say who the caller is and map the errors.

mod connection;

pub use connection::{Accept, ConnectionSlot, Connections, Guarded};

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;
use crate::{Error, ErrorKind};

/// A calling system (SPEC §12): its TLS client certificate when it shows
/// one (SHA-256 of the DER), else its IP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Caller {
    Certificate([u8; 32]),
    Address(IpAddr),
    /// A bearer's `sub` (the CSC API, SPEC §13): limited per user.
    Subject(uuid::Uuid),
}

impl Caller {
    /// The caller behind a peer address. IPv6 hosts usually get a whole /64
    /// (RFC 6177), so its addresses are one caller; IPv4-mapped addresses
    /// are their IPv4 address.
    pub fn from_address(address: IpAddr) -> Self {
        Caller::Address(host(address))
    }
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caller::Certificate(fingerprint) => {
                write!(f, "certificate {}", hex::encode(fingerprint))
            }
            Caller::Address(address) => write!(f, "address {address}"),
            Caller::Subject(subject) => write!(f, "subject {subject}"),
        }
    }
}

/// The host behind `address`, as [`Caller::from_address`] explains.
fn host(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
        v4 => v4,
    }
}

/// Everything limited across requests, built once from `[limits]`.
pub struct Limiter {
    pub config: Limits,
    pub callers: CallerLimits,
    pub memory: MemoryBudget,
    /// Anonymous HSM signatures (HTTP endpoint, TimeStamp RPC), in total.
    pub anonymous: Rate,
}

impl Limiter {
    pub fn new(config: &Limits) -> Arc<Self> {
        Arc::new(Self {
            config: config.clone(),
            callers: CallerLimits::new(
                config.concurrent_requests_per_caller,
                config.requests_per_second_per_caller,
            ),
            memory: MemoryBudget::new(config.memory_budget_bytes),
            anonymous: Rate::new(config.anonymous_signatures_per_second),
        })
    }

    /// Connection caps for one listener.
    pub fn connections(&self) -> Arc<Connections> {
        Connections::new(
            self.config.max_connections,
            self.config.max_connections_per_address,
        )
    }
}

/// A token bucket (RFC 2697's idea without colours): `rate` tokens a
/// second, holding at most `capacity`.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket holding one second's worth.
    fn new(per_second: u32, now: Instant) -> Self {
        let rate = f64::from(per_second.max(1));
        Self {
            rate,
            capacity: rate,
            tokens: rate,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.last = now;
    }

    /// Takes a token, or says how long until there is one.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.capacity
    }
}

/// A shared rate, e.g. of anonymous HSM signatures.
#[derive(Debug)]
pub struct Rate {
    per_second: u32,
    bucket: Mutex<TokenBucket>,
}

impl Rate {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            bucket: Mutex::new(TokenBucket::new(per_second, Instant::now())),
        }
    }

    /// One unit of work now, or how long to wait for one (RFC 6585 §4's
    /// Retry-After, rounded up to whole seconds by the HTTP front).
    pub fn try_take(&self) -> Result<(), Duration> {
        lock(&self.bucket).take(Instant::now())
    }

    /// As [`Rate::try_take`], refused with RESOURCE_EXHAUSTED naming `what`.
    pub fn admit(&self, what: &str) -> Result<(), Error> {
        self.try_take().map_err(|wait| {
            crate::metrics::refused("anonymous_rate");
            Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "{what}: this server makes at most {} anonymous HSM signatures a second \
                     and is at that rate; retry in {} ms",
                    self.per_second,
                    wait.as_millis().max(1)
                ),
            )
        })
    }
}

/// Concurrency and rate of each calling system.
pub struct CallerLimits {
    concurrent: usize,
    per_second: u32,
    callers: Arc<Mutex<HashMap<Caller, CallerState>>>,
}

struct CallerState {
    in_flight: usize,
    bucket: TokenBucket,
}

/// Callers remembered before idle ones (nothing in flight, full bucket)
/// are forgotten: a bound on the map however many addresses call.
const MAX_REMEMBERED_CALLERS: usize = 4096;

impl CallerLimits {
    pub fn new(concurrent: usize, per_second: u32) -> Self {
        Self {
            concurrent,
            per_second,
            callers: Arc::default(),
        }
    }

    /// Admits one request of `caller`, or refuses it at once; the request
    /// counts as in progress until the [`Admission`] is dropped.
    pub fn admit(&self, caller: Caller) -> Result<Admission, Error> {
        let now = Instant::now();
        let mut callers = lock(&self.callers);
        if callers.len() >= MAX_REMEMBERED_CALLERS {
            callers.retain(|_, s| s.in_flight > 0 || !s.bucket.is_full(now));
        }
        let state = callers.entry(caller).or_insert_with(|| CallerState {
            in_flight: 0,
            bucket: TokenBucket::new(self.per_second, now),
        });
        if state.in_flight >= self.concurrent {
            return Err(Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "{} requests of this calling system are in progress, the limit is {}; \
                     wait for one to finish before sending more",
                    state.in_flight, self.concurrent
                ),
            ));
        }
        state.bucket.take(now).map_err(|wait| {
            Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "this calling system sent more than {} requests a second; retry in {} ms",
                    self.per_second,
                    wait.as_millis().max(1)
                ),
            )
        })?;
        state.in_flight += 1;
        Ok(Admission {
            callers: self.callers.clone(),
            caller,
        })
    }
}

/// A request in progress; dropping it ends it.
pub struct Admission {
    callers: Arc<Mutex<HashMap<Caller, CallerState>>>,
    caller: Caller,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(state) = lock(&self.callers).get_mut(&self.caller) {
            state.in_flight = state.in_flight.saturating_sub(1);
        }
    }
}

/// Bytes of request messages held at once, across all callers.
pub struct MemoryBudget {
    bytes: usize,
    semaphore: Arc<Semaphore>,
}

impl MemoryBudget {
    /// `bytes` is at most `u32::MAX` (`Limits::validate`).
    pub fn new(bytes: usize) -> Self {
        Self {
            bytes,
            semaphore: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Reserves `bytes` of the budget until the [`Reservation`] is dropped,
    /// or refuses at once.
    pub fn reserve(&self, bytes: usize) -> Result<Reservation, Error> {
        let too_much = |advice: &str| {
            Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "a request of {bytes} bytes does not fit the server's memory budget of {} \
                     bytes for requests {advice}",
                    self.bytes
                ),
            )
        };
        if bytes > self.bytes {
            return Err(too_much("even alone; send SHA-256 digests instead"));
        }
        let permits = u32::try_from(bytes).map_err(|_| too_much("(over 4 GiB)"))?;
        self.semaphore
            .clone()
            .try_acquire_many_owned(permits)
            .map(Reservation)
            .map_err(|_| too_much("while other large requests are in progress; retry shortly"))
    }
}

/// A part of the memory budget, returned on drop.
#[derive(Debug)]
pub struct Reservation(#[allow(dead_code)] OwnedSemaphorePermit);

/// Limits keep working after a panic elsewhere: the counters stay valid.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_its_rate_up_to_one_second() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, t0);
        for _ in 0..10 {
            bucket.take(t0).unwrap();
        }
        let wait = bucket.take(t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        bucket.take(t0 + Duration::from_millis(100)).unwrap();
        assert!(bucket.is_full(t0 + Duration::from_secs(60)));
        assert_eq!(bucket.tokens, 10.0);
    }

    #[test]
    fn callers_are_limited_apart_and_admissions_end_on_drop() {
        let limits = CallerLimits::new(2, 100);
        let a = Caller::Address([127, 0, 0, 1].into());
        let b = Caller::Certificate([7; 32]);
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        let refused = limits.admit(a).err().unwrap();
        assert_eq!(refused.kind(), ErrorKind::ResourceExhausted);
        assert!(refused.message().contains("limit is 2"));
        let _other = limits.admit(b).unwrap();
        drop(first);
        limits.admit(a).unwrap();
    }

    #[test]
    fn an_ipv6_slash_64_is_one_caller() {
        let a = Caller::from_address("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = Caller::from_address("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = Caller::from_address("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mapped = Caller::from_address("::ffff:127.0.0.2".parse().unwrap());
        assert_eq!(mapped, Caller::Address([127, 0, 0, 2].into()));
    }

    #[test]
    fn rate_per_caller() {
        let limits = CallerLimits::new(1000, 3);
        let a = Caller::Address([127, 0, 0, 1].into());
        for _ in 0..3 {
            drop(limits.admit(a).unwrap());
        }
        let refused = limits.admit(a).err().unwrap();
        assert!(refused.message().contains("3 requests a second"));
        drop(
            limits
                .admit(Caller::Address([127, 0, 0, 2].into()))
                .unwrap(),
        );
    }

    #[test]
    fn memory_budget_is_shared_and_returned() {
        let budget = MemoryBudget::new(100);
        let held = budget.reserve(60).unwrap();
        assert!(budget.reserve(50).is_err());
        assert!(budget.reserve(101).unwrap_err().message().contains("alone"));
        drop(held);
        budget.reserve(100).unwrap();
    }
}
