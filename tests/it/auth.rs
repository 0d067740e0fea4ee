//! Client authentication (SCRAM, md5, trust) and server logins of each kind; refusals carry the
//! right SQLSTATE and reveal nothing about which users exist.

use crate::harness::{self, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_login_works_and_the_server_side_uses_scram_too() {
    let proxy = Proxy::start().await;
    let client = proxy.client_as("app", "app", "app").await;
    let user: String = client.query_one("select current_user::text", &[]).await.unwrap().get(0);
    assert_eq!(user, "app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_client_and_md5_server() {
    let proxy = Proxy::start().await;
    let client = proxy.client_as("app_md5", "app_md5", "app").await;
    let user: String = client.query_one("select current_user::text", &[]).await.unwrap().get(0);
    assert_eq!(user, "app_md5");
    let err = proxy.try_client("app_md5", "wrong", "app").await.unwrap_err();
    assert_eq!(harness::sqlstate(&err).as_deref(), Some("28P01"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_client_and_trust_server() {
    let proxy = Proxy::start().await;
    let client = proxy.client_as("app_trust", "", "app").await;
    let user: String = client.query_one("select current_user::text", &[]).await.unwrap().get(0);
    assert_eq!(user, "app_trust");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_user_look_the_same() {
    let proxy = Proxy::start().await;
    let wrong = proxy.try_client("app", "nope", "app").await.unwrap_err();
    let unknown = proxy.try_client("nobody", "nope", "app").await.unwrap_err();
    assert_eq!(harness::sqlstate(&wrong).as_deref(), Some("28P01"));
    assert_eq!(harness::sqlstate(&unknown).as_deref(), Some("28P01"));
    let strip = |e: &tokio_postgres::Error, user: &str| e.as_db_error().unwrap().message().replace(user, "USER");
    assert_eq!(strip(&wrong, "app"), strip(&unknown, "nobody"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_database_is_3d000() {
    let proxy = Proxy::start().await;
    let err = proxy.try_client("app", "app", "nosuchdb").await.unwrap_err();
    assert_eq!(harness::sqlstate(&err).as_deref(), Some("3D000"));
    assert!(err.as_db_error().unwrap().message().contains("nosuchdb"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_verifier_in_config() {
    let verifier = postgres_protocol::password::scram_sha_256(b"from-verifier");
    let config = harness::test_config("size = 2", "").replace(
        "name = \"app\"\npassword = \"app\"",
        &format!("name = \"app\"\npassword = \"{verifier}\"\nserver_password = \"app\""),
    );
    let proxy = Proxy::with_config(&config).await;
    proxy.client_as("app", "from-verifier", "app").await;
    let err = proxy.try_client("app", "app", "app").await.unwrap_err();
    assert_eq!(harness::sqlstate(&err).as_deref(), Some("28P01"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_reports_server_parameters_and_a_key() {
    let proxy = Proxy::start().await;
    let client = proxy.client().await;
    // tokio-postgres refuses a login without ReadyForQuery; server_version comes from ParameterStatus.
    let row = client.query_one("show server_version", &[]).await.unwrap();
    let version: String = row.get(0);
    assert!(version.chars().next().unwrap().is_ascii_digit());
    // A cancel token exists only when BackendKeyData arrived.
    let _token = client.cancel_token();
}
