//! The untyped path's names: `Service.job` strings turned into the
//! `JobRef`s the typed machinery wants, and application errors as plain
//! runtime errors.

use super::*;

/// The `JobRef` of an untyped call to `Service.job`.
pub(super) fn untyped_ref(job: &str) -> Result<JobRef, Error> {
    let (service, name) = split_job(job)?;
    // Untyped calls name jobs at run time; JobRef wants 'static names.
    // Leaking per call would grow without bound, so intern them.
    Ok(JobRef {
        service: intern(service),
        job: intern(name),
        timeout_ms: None,
        max_attempts: None,
    })
}

/// An untyped call's application error, as the runtime error that carries it.
pub(super) fn untyped_error(job: &str, e: CallError<serde_json::Value>) -> Error {
    match e {
        CallError::Rpc(e) => e,
        CallError::App(data) => Error::Remote {
            job: job.to_owned(),
            kind: ErrorKind::App,
            message: "the job returned its application error".to_owned(),
            data: Some(data),
        },
    }
}

pub(super) fn split_job(job: &str) -> Result<(&str, &str), Error> {
    match job.split_once('.') {
        Some((service, name)) if !service.is_empty() && !name.is_empty() => Ok((service, name)),
        _ => Err(Error::config(format_args!(
            "cannot route job `{job}`: job names are `Service.job`"
        ))),
    }
}

pub(super) fn intern(s: &str) -> &'static str {
    static NAMES: std::sync::OnceLock<Mutex<std::collections::HashSet<&'static str>>> =
        std::sync::OnceLock::new();
    let mut names = lock(NAMES.get_or_init(Default::default));
    if let Some(n) = names.get(s) {
        return n;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}
