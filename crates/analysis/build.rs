//! Records the git commit credit is built from as `CREDIT_GIT_COMMIT`, for the analysis
//! report's header: `CREDIT_GIT_COMMIT` from the environment if set, else the commit checked
//! out in this workspace's own git checkout when it was built (edits not yet committed are not
//! told apart), else nothing (a copy without git, or this crate vendored inside another
//! repository).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `git -C root args...`'s standard output, trimmed, if it succeeds.
fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CREDIT_GIT_COMMIT");
    if let Ok(commit) = std::env::var("CREDIT_GIT_COMMIT") {
        println!("cargo::rustc-env=CREDIT_GIT_COMMIT={commit}");
        return;
    }
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap_or(root);
    // Only this workspace's own checkout: not a repository it happens to sit inside.
    let top = git(&root, &["rev-parse", "--show-toplevel"]).map(PathBuf::from);
    let ours = top.is_some_and(|t| t.canonicalize().unwrap_or(t) == root);
    let commit = if ours {
        git(&root, &["rev-parse", "--short=12", "HEAD"]).unwrap_or_default()
    } else {
        String::new()
    };
    if !commit.is_empty() {
        // Watch what moves HEAD (a commit, a checkout, a fetch that packs refs): only paths
        // that exist, since cargo reruns a script on every build when a watched path is
        // missing.
        let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
        if let Some(head) = git(&root, &["symbolic-ref", "-q", "HEAD"]) {
            watched.push(head);
        }
        for name in watched {
            if let Some(path) = git(&root, &["rev-parse", "--git-path", &name]) {
                let path = root.join(path);
                if path.exists() {
                    println!("cargo::rerun-if-changed={}", path.display());
                }
            }
        }
    }
    println!("cargo::rustc-env=CREDIT_GIT_COMMIT={commit}");
}
