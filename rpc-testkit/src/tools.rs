//! The programs some tests need besides `redis-server` (a browser and its
//! driver, libfaketime, promtool), found in one place, and the one rule for
//! a test whose tool is missing.
//!
//! A developer without Chromium should still be able to run `cargo test`:
//! such a test is skipped, with a line that says what to install. But a
//! skip that passes silently hides a test that never ran, so a run that
//! promises the whole suite (`scripts/test`, which installs every tool
//! first, and CI) sets [`REQUIRE_TOOLS_VAR`], and a missing tool then fails
//! the test instead. [`Tool::ALL`] is the list `scripts/test` installs from
//! (a test of this crate checks that it names every package).

use std::path::{Path, PathBuf};

/// Set to `1` to make a missing tool fail its test instead of skipping it
/// (`scripts/test` sets it). Set to `0` to allow skips even under `CI`.
pub const REQUIRE_TOOLS_VAR: &str = "RPC_TEST_REQUIRE_TOOLS";

/// A program or library a test needs and Debian packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// The browser the dashboard's browser test drives (headless).
    Chromium,
    /// The WebDriver server between the browser test and Chromium.
    Chromedriver,
    /// libfaketime's multi-threaded build, preloaded into processes whose
    /// wall clock a test shifts.
    LibFaketime,
    /// Prometheus's `promtool`, which checks configs, rules and expositions.
    Promtool,
}

impl Tool {
    /// Every tool, in the order `scripts/test` checks them.
    pub const ALL: [Tool; 4] = [
        Tool::Chromium,
        Tool::Chromedriver,
        Tool::LibFaketime,
        Tool::Promtool,
    ];

    /// The Debian package that installs it.
    pub fn package(self) -> &'static str {
        match self {
            Tool::Chromium => "chromium",
            Tool::Chromedriver => "chromium-driver",
            Tool::LibFaketime => "faketime",
            Tool::Promtool => "prometheus",
        }
    }

    /// Where it is on this machine, if anywhere: a program on `PATH`, or
    /// libfaketime in the multiarch library folder.
    pub fn find(self) -> Option<PathBuf> {
        match self {
            Tool::Chromium => on_path(&["chromium", "chromium-browser"]),
            Tool::Chromedriver => on_path(&["chromedriver"]),
            Tool::Promtool => on_path(&["promtool"]),
            Tool::LibFaketime => {
                let lib = libfaketime_path();
                lib.is_file().then_some(lib)
            }
        }
    }

    /// What a person reads: the program's or library's name.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Chromium => "chromium",
            Tool::Chromedriver => "chromedriver",
            Tool::LibFaketime => "libfaketimeMT.so.1",
            Tool::Promtool => "promtool",
        }
    }

    /// The tool's path, for the first lines of a test that needs it.
    ///
    /// When it is missing: `None` after printing `SKIPPED <test>: ...` with
    /// the package to install, so the caller returns; but when this run
    /// requires every tool ([`tools_required`]), a panic that says so.
    #[track_caller]
    pub fn or_skip(self, test: &str) -> Option<PathBuf> {
        match self.judge(self.find(), test, tools_required()) {
            Ok(found) => found,
            Err(failure) => panic!("{failure}"),
        }
    }

    /// [`Tool::or_skip`] without the environment: the path when found;
    /// `Ok(None)` after printing the skip; `Err` with the failure's text
    /// when tools are required.
    fn judge(
        self,
        found: Option<PathBuf>,
        test: &str,
        required: bool,
    ) -> Result<Option<PathBuf>, String> {
        if found.is_some() {
            return Ok(found);
        }
        let why = format!(
            "{} is not installed (apt-get install -y {})",
            self.name(),
            self.package()
        );
        if required {
            return Err(format!(
                "{test} needs a tool, but {why}; this run requires every tool \
                 ({REQUIRE_TOOLS_VAR} or CI is set; scripts/test installs them)"
            ));
        }
        // On stdout for `--nocapture` readers and on stderr for the log.
        println!("SKIPPED {test}: {why}");
        eprintln!("SKIPPED {test}: {why}");
        Ok(None)
    }
}

/// Whether a missing tool fails its test: [`REQUIRE_TOOLS_VAR`] says so
/// when set; otherwise a `CI` variable that is set (and not `false` or `0`).
pub fn tools_required() -> bool {
    required_by(
        std::env::var(REQUIRE_TOOLS_VAR).ok().as_deref(),
        std::env::var("CI").ok().as_deref(),
    )
}

fn required_by(require: Option<&str>, ci: Option<&str>) -> bool {
    let yes = |v: &str| !matches!(v.trim(), "" | "0" | "false");
    match require {
        Some(value) => yes(value),
        None => ci.is_some_and(yes),
    }
}

/// libfaketime's multi-threaded build where Debian's `faketime` package
/// puts it for this machine's architecture.
pub fn libfaketime_path() -> PathBuf {
    Path::new("/usr/lib")
        .join(format!("{}-linux-gnu", std::env::consts::ARCH))
        .join("faketime/libfaketimeMT.so.1")
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_decides_and_ci_decides_only_without_it() {
        assert!(!required_by(None, None));
        assert!(required_by(Some("1"), None));
        assert!(!required_by(Some("0"), Some("true")));
        assert!(!required_by(Some(""), Some("true")));
        assert!(required_by(None, Some("true")));
        assert!(required_by(None, Some("1")));
        assert!(!required_by(None, Some("false")));
        assert!(!required_by(None, Some("")));
    }

    #[test]
    fn a_missing_tool_fails_when_required_and_is_skipped_otherwise() {
        let found = Some(PathBuf::from("/usr/bin/promtool"));
        assert_eq!(
            Tool::Promtool.judge(found.clone(), "t", true),
            Ok(found.clone())
        );
        assert_eq!(Tool::Promtool.judge(found.clone(), "t", false), Ok(found));
        assert_eq!(Tool::LibFaketime.judge(None, "t", false), Ok(None));
        let failure = Tool::LibFaketime
            .judge(None, "clock skew", true)
            .expect_err("a required tool that is missing fails");
        assert!(failure.contains("clock skew"), "{failure}");
        assert!(failure.contains("apt-get install -y faketime"), "{failure}");
        assert!(failure.contains(REQUIRE_TOOLS_VAR), "{failure}");
    }

    #[test]
    fn a_program_on_no_path_is_not_found() {
        assert_eq!(on_path(&["rpc-testkit-no-such-program"]), None);
        assert!(libfaketime_path().ends_with("faketime/libfaketimeMT.so.1"));
    }

    /// The skip rule's tools are the ones `scripts/test` installs: a tool
    /// added here but not there would fail every run of the script.
    #[test]
    fn scripts_test_installs_every_tool() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/test");
        let script = std::fs::read_to_string(path).expect("read scripts/test");
        for tool in Tool::ALL {
            let installs = format!("missing+=({})", tool.package());
            assert!(
                script.contains(&installs),
                "scripts/test does not install {} for {tool:?}",
                tool.package()
            );
        }
        assert!(script.contains(&format!("export {REQUIRE_TOOLS_VAR}=1")));
    }
}
