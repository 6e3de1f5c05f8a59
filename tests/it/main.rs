//! The integration tests: one binary (`autotests = false`), so the AWS SDK is linked once.

// Helpers are `pub` across the modules of this binary, and tests print what they ran; the
// pedantic group is for the product's code.
#![allow(
    unreachable_pub,
    unused_qualifications,
    clippy::pedantic,
    clippy::print_stdout,
    clippy::print_stderr
)]

/// `Server`, one handle over moto and rclone, and `for_servers!` (one test per server).
mod backends;
/// `hoist deploy` with CloudFront: the exact paths invalidated, limits, throttling, reruns.
mod cdn;
/// Requests in flight at the defaults and at each setting (issue #15), counted at a proxy.
mod concurrency;
/// The `Store` and `NamedStore` contracts, one test per backend × case.
mod conformance;
/// `hoist deploy` end to end: order, no-ops, dry runs, guards, headers, awkward keys.
mod deploy;
/// Issue #17: precompression, redirects, SPA fallback, clean URLs, response headers, the
/// generated CloudFront Functions run under Node.js.
mod edge;
/// Bad input and hostile environments: one clear error, the documented exit code, nothing
/// changed; secrets never printed.
mod errors;
/// Faults injected by `proxy`, interruptions, files changing mid-run: everything converges.
mod faults;
/// The npm package (launcher plus this platform's binary), installed from its tarballs.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod npm;
/// Finding deploy.yaml, --version, completions, the man page, plain output in pipes.
mod onboarding;
/// The fault-injecting HTTP/1.1 proxy the fault tests put between hoist and a server.
mod proxy;
/// Releases (issue #12): old assets survive, rollback, pruning, the lock, nested sites.
#[cfg(unix)]
mod releases;
/// Deploys a team can review (issue #16): the Markdown report read back with a Markdown parser.
mod review;
/// The test servers and helpers themselves; read these first when everything fails.
mod server_smoke;
/// Guards that start moto_server and rclone serve s3 on free loopback ports.
mod servers;
/// `hoist sync` beside `aws s3 sync`: the same lines, exit codes and final state.
mod sync_compat;
/// The aws-cli flags of issue #14 side by side: customer keys, grants, checksums, case
/// conflicts, multipart copies, and aws-cli's checks of their combinations.
mod sync_flags;
/// Running the binary in a clean environment, building trees, reading buckets back.
mod util;
