//! Schema files as they were at a git revision, for `breaking --against-git`.
//!
//! The loader reads each file (the one asked for and everything it imports)
//! through [`GitRev::read`] instead of the file system, so imports resolve
//! against the same revision. `git show REV:./NAME` run in the file's
//! directory makes git resolve the path relative to that directory, which
//! spares us from finding the repository's top level or caring about
//! symlinks on the way to it.

use std::io;
use std::path::Path;
use std::process::Command;

/// A git revision (`HEAD`, `main`, `v1.2`, a commit) to read schemas from.
#[derive(Clone, Debug)]
pub struct GitRev {
    rev: String,
}

impl GitRev {
    pub fn new(rev: impl Into<String>) -> Self {
        GitRev { rev: rev.into() }
    }

    /// How a file read from this revision is named in messages: `REV:path`.
    pub fn display(&self, path: &Path) -> String {
        format!("{}:{}", self.rev, path.display())
    }

    /// The text of `path` (absolute, as the loader resolves it) at this revision.
    pub fn read(&self, path: &Path) -> io::Result<String> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a file path",
            ));
        };
        let spec = format!("{}:./{}", self.rev, name.to_string_lossy());
        let output = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["show", &spec])
            .output()
            .map_err(|err| io::Error::new(err.kind(), format!("cannot run git: {err}")))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("`git show {spec}` failed: {}", stderr.trim()),
            ));
        }
        String::from_utf8(output.stdout).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("`{spec}` is not UTF-8 text"),
            )
        })
    }
}
