//! `RELOAD`: read the config file again and apply it without dropping any
//! client (see [`crate::proxy::Shared::reload`] for what changes live). A
//! file that does not load, or that changes a start-only setting, is
//! refused with every problem named, and the running config stays.

use bytes::BytesMut;

use super::commands::completion;
use crate::config::Config;
use crate::net::messages::PgError;
use crate::proxy::Shared;

/// What every refusal starts with, so the operator knows nothing changed.
const REFUSED: &str = "RELOAD refused, the running config stays in effect";

/// Re-reads `config.source`, validates it and swaps it in.
pub async fn reload(shared: &Shared) -> Result<BytesMut, PgError> {
    let Some(path) = shared.runtime().config.source.clone() else {
        return Err(PgError::error(
            "55000",
            format!("{REFUSED}: this proxy's config was built in memory, not read from a file"),
        )
        .with_hint("start shardwire with a config file to use RELOAD"));
    };
    let loaded = tokio::task::spawn_blocking({
        let path = path.clone();
        move || Config::load(&path)
    })
    .await
    .map_err(|e| {
        PgError::error(
            "XX000",
            format!("{REFUSED}: reading the config failed: {e}"),
        )
    })?;
    let config = loaded.map_err(|e| PgError::error("F0000", format!("{REFUSED}: {e}")))?;
    let replaced = shared
        .reload(config)
        .map_err(|e| PgError::error("55000", format!("{REFUSED}: {e}")))?;
    tracing::info!(config = %path.display(), pools_replaced = replaced, "config reloaded");
    Ok(completion("RELOAD"))
}
