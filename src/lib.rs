//! hoist publishes static websites to Amazon S3 and S3-compatible stores, and is a faithful,
//! faster `aws s3 sync`.
//!
//! The modules follow the data. `cli` is what the user typed; `settings` validates it together
//! with `config` (deploy.yaml) into typed values before the first request. `scan` turns the
//! source tree into sorted `LocalFile`s whose headers come from `rules`. A `store::Store` (S3 or a
//! local directory) lists the target; `manifest` remembers what the last deploy published; `plan`
//! compares the two without I/O and orders the actions into phases; `execute` alone mutates the
//! store, phase by phase; `cdn` invalidates CloudFront; `report` prints. `deploy` wires these
//! together. `sync` is `aws s3 sync` with aws-cli's semantics: its own listing, filters and
//! comparison strategies, over the same stores. Names of remote objects are `key::Key`s,
//! relative to the target prefix, so nothing above the store can name an object outside the
//! target.

pub mod aws;
pub mod cdn;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod error;
pub mod execute;
pub mod headers;
pub mod interrupt;
pub mod key;
pub mod manifest;
pub mod plan;
pub mod report;
pub mod rules;
pub mod scan;
pub mod settings;
pub mod store;
pub mod sync;
pub mod target;

pub use error::Error;
