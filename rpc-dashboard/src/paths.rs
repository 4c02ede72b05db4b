//! The dashboard's URLs as the Rust side writes them (redirects, form
//! actions); templates write theirs with askama's `urlencode_strict` filter
//! (plain `urlencode` leaves `/` as it is). Every name from Redis or the
//! user is percent-encoded as one path segment, so a service called `a/b`
//! or `<x>` still links to its own page.

/// A path segment (or query value), percent-encoded.
pub fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// A service's page.
pub fn service(service: &str) -> String {
    format!("/services/{}", segment(service))
}

/// A call's page.
pub fn call(id: &str) -> String {
    format!("/jobs/{}", segment(id))
}

/// Where a queued or leased job's whole message is downloaded.
pub fn queued_message(service_name: &str, token: &str) -> String {
    format!("{}/queue/{}/message", service(service_name), segment(token))
}

/// Where a dead letter's whole message is downloaded (`?field=reason`: its reason).
pub fn dead_message(service_name: &str, token: &str) -> String {
    format!("{}/dead/{}/message", service(service_name), segment(token))
}

/// Where a scheduled job's whole message is downloaded.
pub fn scheduled_message(service_name: &str, id: &str) -> String {
    format!(
        "{}/scheduled/{}/message",
        service(service_name),
        segment(id)
    )
}

/// Where a call's whole kept result is downloaded.
pub fn kept_result(id: &str) -> String {
    format!("{}/result", call(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_redis_stay_one_segment() {
        assert_eq!(service("a/b c"), "/services/a%2Fb%20c");
        assert_eq!(call("<x>?"), "/jobs/%3Cx%3E%3F");
    }
}
