//! One test binary against a real SoftHSM token: the fixture in `support`
//! creates a development state directory once per process and starts an
//! in-process server per test, each with its own ephemeral-key label so that
//! leak checks of parallel tests do not see each other's keys.

mod support;

mod audit;
mod cades_lta;
mod certificate;
mod cli;
mod crl;
mod csc;
mod deployment;
mod detached;
mod errors;
mod hygiene;
mod key_pool;
mod levels;
mod limits;
mod lint;
mod lookup;
mod ltv;
mod memory;
mod metrics;
mod ocsp;
mod pades;
mod pades_fields;
mod pades_realworld;
mod recovery;
mod registry;
mod registry_mail;
mod registry_race;
mod replay;
mod robustness;
mod service;
mod shutdown;
mod store;
mod tls;
mod tsa;
