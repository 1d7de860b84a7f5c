//! Connections of the control plane (probe, in-doubt recovery, PROMOTE):
//! plain tokio-postgres clients to one server, set up one way.

use std::time::Duration;

use crate::config::{Config, User};

/// The `[[users]]` entry whose server credentials control-plane
/// connections use: `replicas.probe_user`, else the first user with a
/// server password, else the first user; `None` when there is no such user.
pub fn control_user(config: &Config) -> Option<&User> {
    match &config.replicas.probe_user {
        Some(name) => config.user(name),
        None => config
            .users
            .iter()
            .find(|u| u.server_password().is_some())
            .or(config.users.first()),
    }
}

/// Who a control-plane connection logs in as, and where.
pub struct ControlLogin<'a> {
    /// Server role.
    pub user: &'a str,
    /// Its password, if any.
    pub password: Option<&'a str>,
    /// Database on the server.
    pub database: &'a str,
    /// `application_name`, so operators can tell the proxy's own sessions
    /// apart in `pg_stat_activity`.
    pub application_name: &'a str,
    /// Time allowed to connect and authenticate.
    pub connect_timeout: Duration,
}

/// The tokio-postgres config for `address` (`host:port` or `[v6]:port`).
pub fn control_config(address: &str, login: &ControlLogin<'_>) -> tokio_postgres::Config {
    let (host, port) = host_and_port(address);
    let mut pg = tokio_postgres::Config::new();
    pg.host(host)
        .port(port)
        .dbname(login.database)
        .user(login.user)
        .application_name(login.application_name)
        .connect_timeout(login.connect_timeout);
    if let Some(password) = login.password {
        pg.password(password);
    }
    pg
}

/// Splits `host:port`; a missing or invalid port means Postgres' 5432.
pub fn host_and_port(address: &str) -> (&str, u16) {
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !port.contains(']') => {
            (host, port.parse().unwrap_or(5432))
        }
        _ => (address, 5432),
    };
    (host.trim_start_matches('[').trim_end_matches(']'), port)
}

#[cfg(test)]
mod tests {
    use super::host_and_port;

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(host_and_port("127.0.0.1:5433"), ("127.0.0.1", 5433));
        assert_eq!(host_and_port("[::1]:5434"), ("::1", 5434));
        assert_eq!(host_and_port("[::1]"), ("::1", 5432));
        assert_eq!(host_and_port("localhost"), ("localhost", 5432));
        assert_eq!(host_and_port("localhost:x"), ("localhost", 5432));
    }
}
