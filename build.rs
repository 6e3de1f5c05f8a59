//! Names the commit hoist was built from, for `hoist --version`: `HOIST_COMMIT` from the
//! environment (a release workflow sets it), else `git rev-parse` in the checkout, else
//! "unknown commit" (a build from a crate tarball).

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HOIST_COMMIT");
    let git = Path::new(".git");
    if git.join("HEAD").exists() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        // A commit on the current branch moves its ref, not HEAD.
        if let Ok(head) = std::fs::read_to_string(git.join("HEAD"))
            && let Some(reference) = head.trim().strip_prefix("ref: ")
        {
            println!("cargo:rerun-if-changed=.git/{reference}");
        }
    }
    let commit = std::env::var("HOIST_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=10", "HEAD"])
                .output()
                .ok()?;
            let text = String::from_utf8(out.stdout).ok()?;
            (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
        })
        .unwrap_or_else(|| "unknown commit".to_string());
    println!("cargo:rustc-env=HOIST_COMMIT={commit}");
}
