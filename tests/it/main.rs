//! The integration tests: one binary (`autotests = false`), so the AWS SDK is linked once.

mod backends;
mod cdn;
mod conformance;
mod deploy;
mod errors;
mod faults;
mod proxy;
mod server_smoke;
mod servers;
mod sync_compat;
mod util;
