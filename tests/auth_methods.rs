//! Client authentication methods through the proxy: SCRAM with a stored
//! verifier, md5 with a plain or stored password, trust; wrong passwords
//! are refused with 28P01 for each.

mod common;

use common::{APP_DB, APP_PASSWORD, APP_USER, TestEnv, connect};
use shardwire::config::{AuthMethod, User};
use tokio_postgres::error::SqlState;

fn user(name: &str, password: Option<String>, auth: AuthMethod) -> User {
    User {
        password,
        auth,
        server_user: Some(APP_USER.to_string()),
        server_password: Some(APP_PASSWORD.to_string()),
        ..User::with_password(name, APP_PASSWORD)
    }
}

fn conninfo(env: &TestEnv, user: &str, password: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user={user} password={password} dbname={APP_DB}",
        env.proxy_port()
    )
}

async fn login_works(env: &TestEnv, user: &str, password: &str) {
    let client = connect(&conninfo(env, user, password))
        .await
        .unwrap_or_else(|e| panic!("{user} should log in: {e}"));
    let row = client
        .query_one("select current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), APP_USER, "server role of {user}");
}

async fn login_refused(env: &TestEnv, user: &str, password: &str) {
    let err = connect(&conninfo(env, user, password))
        .await
        .err()
        .unwrap_or_else(|| panic!("{user} with a wrong password must be refused"));
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_auth_method_checks_the_password() {
    let scram_secret = postgres_protocol::password::scram_sha_256(b"scram-pw");
    let md5_secret = postgres_protocol::password::md5(b"md5-pw", "md5stored");
    let env = TestEnv::start(|config| {
        config.users.extend([
            user("scramstored", Some(scram_secret), AuthMethod::ScramSha256),
            user("md5plain", Some("md5-pw".into()), AuthMethod::Md5),
            user("md5stored", Some(md5_secret), AuthMethod::Md5),
            user("trusted", None, AuthMethod::Trust),
        ]);
    })
    .await;
    login_works(&env, "scramstored", "scram-pw").await;
    login_refused(&env, "scramstored", "wrong").await;
    login_works(&env, "md5plain", "md5-pw").await;
    login_refused(&env, "md5plain", "wrong").await;
    login_works(&env, "md5stored", "md5-pw").await;
    login_refused(&env, "md5stored", "wrong").await;
    login_works(&env, "trusted", "anything").await;
}
