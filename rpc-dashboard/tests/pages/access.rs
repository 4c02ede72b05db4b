//! Who may see the dashboard: a token guards every page when one is set,
//! and without one only loopback host names are served (DNS rebinding).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_every_page_when_one_is_set() {
    // What `--listen 0.0.0.0:9870 --token ...` serves: nothing without it.
    use base64::Engine;
    let fixture = Fixture::start().await;
    let mut options = support::options(&fixture.url);
    options.token = Some(TOKEN.to_owned());
    let router = dashboard(options);
    let denied = get(&router, "/").await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert!(denied.headers.contains_key(header::WWW_AUTHENTICATE));
    assert_eq!(
        get(&router, "/assets/dashboard.css").await.status,
        StatusCode::UNAUTHORIZED
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("operator:{TOKEN}"));
    let wrong = base64::engine::general_purpose::STANDARD.encode("operator:guess");
    assert_eq!(
        get_with(
            &router,
            "/",
            header::AUTHORIZATION,
            &format!("Basic {basic}")
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        get_with(
            &router,
            "/",
            header::AUTHORIZATION,
            &format!("Basic {wrong}")
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get_with(
            &router,
            "/",
            header::AUTHORIZATION,
            &format!("Bearer {TOKEN}")
        )
        .await
        .status,
        StatusCode::OK
    );
    let login = get(&router, &format!("/workers?token={TOKEN}")).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    assert_eq!(login.headers[header::LOCATION], "/workers");
    let cookie = login.headers[header::SET_COOKIE]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(cookie.contains("HttpOnly"));
    let pair = cookie.split(';').next().expect("name=value");
    assert!(
        !pair.contains(TOKEN),
        "the cookie holds a session value, not the token"
    );
    assert_eq!(
        get_with(&router, "/workers", header::COOKIE, pair)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get(&router, "/workers?token=guess").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_only_loopback_host_names_are_served() {
    // DNS rebinding: another site's name pointed at 127.0.0.1 must not get
    // the pages (nor the CSRF token in them).
    let fixture = Fixture::start().await;
    let router = dashboard(support::options(&fixture.url));
    let local = get_with(&router, "/", header::HOST, "127.0.0.1:9870").await;
    assert_eq!(local.status, StatusCode::OK);
    let rebound = get_with(&router, "/", header::HOST, "attacker.example:9870").await;
    assert_eq!(rebound.status, StatusCode::FORBIDDEN);
    assert!(!rebound.body.contains("name=\"csrf\""));
}
