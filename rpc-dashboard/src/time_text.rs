//! How durations and moments read on the pages: `4.2s`, `3m 12s`, `in 20s`,
//! `5s ago`. Kept short so tables of leases stay readable.

use std::time::{Duration, SystemTime};

/// A duration as a person reads it: `850ms`, `4.2s`, `3m 12s`, `2h 05m`, `3d 4h`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    let secs = d.as_secs();
    if ms < 1_000 {
        format!("{ms}ms")
    } else if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 3_600 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else if secs < 86_400 {
        format!("{}h {:02}m", secs / 3_600, (secs % 3_600) / 60)
    } else {
        format!("{}d {}h", secs / 86_400, (secs % 86_400) / 3_600)
    }
}

/// How long ago `t` was (`5.0s ago`), or how far ahead (`in 20.0s`).
pub fn relative(t: SystemTime, now: SystemTime) -> String {
    match now.duration_since(t) {
        Ok(past) => format!("{} ago", duration(past)),
        Err(ahead) => format!("in {}", duration(ahead.duration())),
    }
}

/// When something is due, given in ms since the epoch (`in 20.0s`, or
/// `5.0s ago` for one overdue); `never` past the year 9999 (a score of
/// `+inf` on the schedule reads as `u64::MAX`).
pub fn due_ms(ms: u64, now: SystemTime) -> String {
    if ms > rpc_protocol::limits::MAX_DEADLINE_MS {
        return "never".to_owned();
    }
    relative(SystemTime::UNIX_EPOCH + Duration::from_millis(ms), now)
}

/// The age of something that started at `t`, `0ms` if `t` is ahead of the clock.
pub fn age(t: SystemTime, now: SystemTime) -> String {
    duration(now.duration_since(t).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_the_largest_useful_unit() {
        assert_eq!(duration(Duration::from_millis(850)), "850ms");
        assert_eq!(duration(Duration::from_millis(4_200)), "4.2s");
        assert_eq!(duration(Duration::from_secs(192)), "3m 12s");
        assert_eq!(duration(Duration::from_secs(7_500)), "2h 05m");
        let now = SystemTime::now();
        assert_eq!(relative(now - Duration::from_secs(5), now), "5.0s ago");
        assert_eq!(relative(now + Duration::from_secs(20), now), "in 20.0s");
        let now_ms = rpc_protocol::time::unix_ms(now);
        assert_eq!(due_ms(now_ms + 20_000, now), "in 20.0s");
        assert_eq!(due_ms(u64::MAX, now), "never");
    }
}
