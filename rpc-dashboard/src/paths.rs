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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_redis_stay_one_segment() {
        assert_eq!(service("a/b c"), "/services/a%2Fb%20c");
        assert_eq!(call("<x>?"), "/jobs/%3Cx%3E%3F");
    }
}
