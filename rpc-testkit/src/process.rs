//! Signals and guarded child processes, for tests that crash or freeze a
//! worker (or a Redis) on purpose.
//!
//! `std::process::Child` neither kills its process when dropped nor offers
//! any signal but `SIGKILL`. A test that panics halfway would leave its
//! worker processes running, and tests of at-least-once delivery need to
//! freeze a worker (`SIGSTOP`) and thaw it (`SIGCONT`), or ask it to shut down
//! gracefully (`SIGTERM`). [`ChildGuard`] covers both.
//!
//! ```
//! use rpc_testkit::ChildGuard;
//! use std::process::Command;
//! use std::time::Duration;
//!
//! let mut sleeper = ChildGuard::spawn(Command::new("sleep").arg("30")).unwrap();
//! sleeper.sigstop().unwrap();
//! sleeper.sigcont().unwrap();
//! sleeper.sigterm().unwrap();
//! let status = sleeper.wait_timeout(Duration::from_secs(5)).unwrap();
//! assert!(status.is_some(), "sleep should have exited on SIGTERM");
//! ```

use std::io;
use std::process::{Child, Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal;
use nix::unistd::Pid;

pub use nix::sys::signal::Signal;

/// Sends `sig` to the process `pid`.
pub fn signal(pid: u32, sig: Signal) -> io::Result<()> {
    let raw = i32::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("bad pid {pid}")))?;
    signal::kill(Pid::from_raw(raw), sig).map_err(io::Error::from)
}

/// Sends `SIGKILL`: the process dies at once, without cleaning up (a crash).
pub fn sigkill(pid: u32) -> io::Result<()> {
    signal(pid, Signal::SIGKILL)
}

/// Sends `SIGTERM`: the polite request to shut down.
pub fn sigterm(pid: u32) -> io::Result<()> {
    signal(pid, Signal::SIGTERM)
}

/// Sends `SIGSTOP`: the process freezes (a hang, a long GC pause) until
/// `SIGCONT`. Its sockets stay open.
pub fn sigstop(pid: u32) -> io::Result<()> {
    signal(pid, Signal::SIGSTOP)
}

/// Sends `SIGCONT`: a stopped process resumes.
pub fn sigcont(pid: u32) -> io::Result<()> {
    signal(pid, Signal::SIGCONT)
}

/// Waits up to `timeout` for `child` to exit; `None` if it is still running.
pub(crate) fn wait_child_timeout(
    child: &mut Child,
    timeout: Duration,
) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A child process that is killed (`SIGKILL`) and reaped when the guard is
/// dropped, so a failing test leaves nothing behind.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    exit: Option<ExitStatus>,
}

impl ChildGuard {
    /// Spawns `command` and guards the child.
    pub fn spawn(command: &mut Command) -> io::Result<ChildGuard> {
        Ok(ChildGuard::new(command.spawn()?))
    }

    /// Guards an already spawned child.
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard { child, exit: None }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child itself, e.g. to take its `stdout`.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Sends any signal to the child.
    pub fn signal(&self, sig: Signal) -> io::Result<()> {
        signal(self.pid(), sig)
    }

    /// Kills the child at once (a crash). Use [`wait`](Self::wait) or
    /// [`wait_timeout`](Self::wait_timeout) to observe the exit.
    pub fn sigkill(&self) -> io::Result<()> {
        self.signal(Signal::SIGKILL)
    }

    /// Freezes the child until [`sigcont`](Self::sigcont).
    pub fn sigstop(&self) -> io::Result<()> {
        self.signal(Signal::SIGSTOP)
    }

    /// Resumes a frozen child.
    pub fn sigcont(&self) -> io::Result<()> {
        self.signal(Signal::SIGCONT)
    }

    /// Asks the child to shut down gracefully.
    pub fn sigterm(&self) -> io::Result<()> {
        self.signal(Signal::SIGTERM)
    }

    /// Whether the child is still running (a stopped child counts as
    /// running).
    pub fn is_running(&mut self) -> io::Result<bool> {
        Ok(self.try_wait()?.is_none())
    }

    /// The exit status if the child has exited, without blocking.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait()?;
        }
        Ok(self.exit)
    }

    /// Waits for the child to exit.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.exit {
            return Ok(status);
        }
        let status = self.child.wait()?;
        self.exit = Some(status);
        Ok(status)
    }

    /// Waits up to `timeout` for the child to exit; `None` if it is still
    /// running then.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        if self.exit.is_none() {
            self.exit = wait_child_timeout(&mut self.child, timeout)?;
        }
        Ok(self.exit)
    }

    /// Kills the child and waits for it.
    pub fn kill_and_wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        self.sigkill()?;
        self.wait()
    }

    /// Gives up the guard: the child will no longer be killed on drop.
    pub fn into_inner(self) -> Child {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so reading the
        // child out of it moves it exactly once.
        unsafe { std::ptr::read(&this.child) }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Errors are ignored: the child may be gone already, and a panicking
        // drop would hide the test's own failure.
        let _ = self.kill_and_wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper() -> ChildGuard {
        ChildGuard::spawn(Command::new("sleep").arg("60")).expect("spawn sleep")
    }

    #[test]
    fn sigkill_is_observed() {
        use std::os::unix::process::ExitStatusExt;
        let mut child = sleeper();
        assert!(child.is_running().unwrap());
        child.sigkill().unwrap();
        let status = child
            .wait_timeout(Duration::from_secs(5))
            .unwrap()
            .expect("killed child exits");
        assert_eq!(status.signal(), Some(libc_sigkill()));
        assert!(!child.is_running().unwrap());
    }

    fn libc_sigkill() -> i32 {
        Signal::SIGKILL as i32
    }

    #[test]
    fn stopped_child_keeps_running_until_killed() {
        let mut child = sleeper();
        child.sigstop().unwrap();
        assert_eq!(child.wait_timeout(Duration::from_millis(50)).unwrap(), None);
        child.sigcont().unwrap();
        child.sigterm().unwrap();
        assert!(child
            .wait_timeout(Duration::from_secs(5))
            .unwrap()
            .is_some());
    }

    #[test]
    fn drop_kills_the_child() {
        let child = sleeper();
        let pid = child.pid();
        drop(child);
        // The child was reaped, so the pid no longer names it.
        assert!(signal(pid, Signal::SIGCONT).is_err());
    }

    #[test]
    fn into_inner_releases_the_guard() {
        let mut child = sleeper().into_inner();
        assert!(child.try_wait().unwrap().is_none());
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
